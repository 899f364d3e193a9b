#include "tap_endpoint.hpp"

#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/uio.h>

#include <algorithm>
#include <cstring>

#include "epair/ethernet.hpp"
#include "epair/frame.hpp"
#include "virtio_net.hpp"

namespace epair::tap {

namespace {

constexpr std::uint8_t VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
constexpr std::uint8_t VIRTIO_NET_HDR_F_DATA_VALID = 2;
constexpr std::uint8_t VIRTIO_NET_HDR_GSO_NONE = 0;

constexpr int kVnetHeaderSize = sizeof(virtio_net_hdr);
constexpr std::uint32_t kReadBurst = 32;

Status errno_status(std::string_view name, const char* what) {
  const int e = errno;
  return Status{e, std::string(name) + ": " + what + ": " + std::strerror(e)};
}

}  // namespace

void meta_from_header(const virtio_net_hdr& hdr, FrameMeta& meta) {
  if ((hdr.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) != 0) {
    meta.flags |= kFrameCsumPartial;
    meta.csum_start = hdr.csum_start;
    meta.csum_offset = hdr.csum_offset;
  } else if ((hdr.flags & VIRTIO_NET_HDR_F_DATA_VALID) != 0) {
    meta.flags |= kFrameCsumValid;
  }
  if (hdr.gso_type != VIRTIO_NET_HDR_GSO_NONE) {
    meta.flags |= kFrameGso;
    meta.gso_type = hdr.gso_type;
    meta.gso_size = hdr.gso_size;
  }
}

virtio_net_hdr header_from_meta(const FrameMeta& meta) {
  virtio_net_hdr hdr{};
  if ((meta.flags & kFrameCsumPartial) != 0) {
    hdr.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
    hdr.csum_start = meta.csum_start;
    hdr.csum_offset = meta.csum_offset;
    // A hint for the kernel's linear part; it raises it where it must.
    hdr.hdr_len = static_cast<std::uint16_t>(meta.csum_start + meta.csum_offset + 2);
  } else if ((meta.flags & kFrameCsumValid) != 0) {
    hdr.flags = VIRTIO_NET_HDR_F_DATA_VALID;
  }
  if ((meta.flags & kFrameGso) != 0) {
    hdr.gso_type = meta.gso_type;
    hdr.gso_size = meta.gso_size;
  }
  return hdr;
}

bool insert_vlan_tag(Frame& frame) {
  std::uint8_t* front = frame.prepend(4);
  if (front == nullptr) return false;
  std::memmove(front, front + 4, 12);
  ethernet::store_be16(front + 12, ethernet::kTypeVlan);
  ethernet::store_be16(front + 14, frame.meta.vlan_tci);
  frame.meta.flags &= ~kFrameVlanTag;
  if ((frame.meta.flags & kFrameCsumPartial) != 0) frame.meta.csum_start += 4;
  return true;
}

Result<Device> Device::open(std::string_view name, bool exclusive, int ifindex) {
  if (name.empty() || name.size() >= IFNAMSIZ) return Status{EINVAL, "invalid interface name"};
  os::UniqueFd fd(::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC));
  if (!fd) return errno_status("/dev/net/tun", "open");
  if (ifindex != 0 && ::ioctl(fd.get(), TUNSETIFINDEX, &ifindex) != 0) return errno_status(name, "TUNSETIFINDEX");
  ifreq ifr{};
  std::memcpy(ifr.ifr_name, name.data(), name.size());
  ifr.ifr_flags = static_cast<short>(IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | (exclusive ? IFF_TUN_EXCL : 0));
  if (::ioctl(fd.get(), TUNSETIFF, &ifr) != 0) {
    if (errno == EBUSY && ifindex != 0 && ::if_nametoindex(std::string(name).c_str()) == 0) {
      return Status{EBUSY, std::string(name) + ": interface index " + std::to_string(ifindex) + " is taken"};
    }
    if (errno == EBUSY && exclusive) return Status{EEXIST, "interface " + std::string(name) + " already exists"};
    if (errno == EBUSY) return Status{EBUSY, std::string(name) + ": TAP device is in use by another process"};
    if (errno == EINVAL && !exclusive) return Status{ENODEV, std::string(name) + ": not a TAP device"};
    return errno_status(name, "TUNSETIFF");
  }
  int size = kVnetHeaderSize;
  if (::ioctl(fd.get(), TUNSETVNETHDRSZ, &size) != 0) return errno_status(name, "TUNSETVNETHDRSZ");
  Device device(std::move(fd), std::string(name));
  if (Status s = device.set_offloads(true); !s) return s;
  return device;
}

Status Device::set_offloads(bool on) {
  unsigned offloads = on ? TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN : 0;
#ifdef TUN_F_USO4
  if (on && ::ioctl(fd_.get(), TUNSETOFFLOAD, offloads | TUN_F_USO4 | TUN_F_USO6) == 0) return {};
#endif
  if (::ioctl(fd_.get(), TUNSETOFFLOAD, offloads) != 0) return errno_status(name_, "TUNSETOFFLOAD");
  return {};
}

Result<Device> Device::create(std::string_view name, int ifindex) {
  if (::if_nametoindex(std::string(name).c_str()) != 0) {
    return Status{EEXIST, "interface " + std::string(name) + " already exists"};
  }
  auto device = open(name, true, ifindex);
  if (!device) return device;
  if (Status s = device->set_persistent(true); !s) return s;
  return device;
}

Result<Device> Device::attach(std::string_view name) {
  if (::if_nametoindex(std::string(name).c_str()) == 0) {
    return Status{ENODEV, "interface " + std::string(name) + " does not exist"};
  }
  return open(name, false);
}

Status Device::set_carrier(bool on) {
  int value = on ? 1 : 0;
  if (::ioctl(fd_.get(), TUNSETCARRIER, &value) != 0) return errno_status(name_, "TUNSETCARRIER");
  return {};
}

Status Device::set_persistent(bool on) {
  if (::ioctl(fd_.get(), TUNSETPERSIST, on ? 1 : 0) != 0) return errno_status(name_, "TUNSETPERSIST");
  return {};
}

Endpoint::Endpoint(std::shared_ptr<Interface> ifp, Device device, FramePool& pool)
    : ifp_(std::move(ifp)), device_(std::move(device)), pool_(pool) {}

Endpoint::~Endpoint() { stop(); }

Status Endpoint::start(GoneHandler on_gone, Poller* poller) {
  on_gone_ = std::move(on_gone);
  if (poller != nullptr) {
    poller_ = poller;
    return poller->add(*this);
  }
  stop_event_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!stop_event_) return errno_status(device_.name(), "eventfd");
  reader_ = std::thread([this] { read_loop(); });
  return {};
}

void Endpoint::stop() {
  std::call_once(stopped_, [this] {
    if (poller_ != nullptr) poller_->remove(*this);
    if (stop_event_) {
      const std::uint64_t one = 1;
      [[maybe_unused]] ssize_t n = ::write(stop_event_.get(), &one, sizeof one);
    }
    if (reader_.joinable()) reader_.join();
  });
}

void Endpoint::read_loop() {
  pollfd fds[2] = {{device_.fd(), POLLIN, 0}, {stop_event_.get(), POLLIN, 0}};
  for (;;) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if ((fds[1].revents & POLLIN) != 0) return;
    if (read_burst() == ReadResult::kGone) return;
    if ((fds[0].revents & (POLLERR | POLLHUP | POLLNVAL)) != 0) {
      if (on_gone_) on_gone_("device error");
      return;
    }
  }
}

Endpoint::ReadResult Endpoint::read_burst() {
  Frame* batch[kReadBurst];
  std::uint32_t count = 0;
  bool read = false;
  std::string gone;
  std::uint64_t dropped = 0;
  while (count < kReadBurst) {
    Frame* frame = pool_.alloc();
    if (frame == nullptr) {
      // Out of frames: the packet is read and dropped so the TAP drains.
      std::uint8_t scratch[kVnetHeaderSize];
      iovec iov = {scratch, sizeof scratch};
      if (::readv(device_.fd(), &iov, 1) < 0) break;
      read = true;
      ++dropped;
      continue;
    }
    virtio_net_hdr hdr{};
    iovec iov[2] = {{&hdr, sizeof hdr}, {frame->data(), frame->capacity() - frame->headroom()}};
    const ssize_t n = ::readv(device_.fd(), iov, 2);
    if (n < kVnetHeaderSize) {
      const int error = n < 0 ? errno : EIO;
      frame->release();
      if (error == EAGAIN || error == EINTR) break;
      gone = std::strerror(error);
      break;
    }
    read = true;
    if (!frame->resize(static_cast<std::uint32_t>(n - kVnetHeaderSize))) {
      frame->release();
      continue;
    }
    meta_from_header(hdr, frame->meta);
    batch[count++] = frame;
  }
  if (count != 0) ifp_->transmit_burst({batch, count});
  if (dropped != 0) ifp_->count_output_drops(dropped);
  if (!gone.empty()) {
    if (on_gone_) on_gone_(gone);
    return ReadResult::kGone;
  }
  return read ? ReadResult::kRead : ReadResult::kEmpty;
}

Poller::Poller(std::chrono::microseconds spin) : spin_(spin) {}

Poller::~Poller() { stop(); }

Status Poller::start() {
  epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_) return errno_status("TAP poller", "epoll_create1");
  wake_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake_) return errno_status("TAP poller", "eventfd");
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.ptr = nullptr;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, wake_.get(), &event) < 0) {
    return errno_status("TAP poller", "epoll_ctl");
  }
  thread_ = std::thread([this] { run(); });
  return {};
}

void Poller::stop() {
  std::call_once(stopped_, [this] {
    stopping_.store(true, std::memory_order_relaxed);
    if (wake_) {
      const std::uint64_t one = 1;
      [[maybe_unused]] ssize_t n = ::write(wake_.get(), &one, sizeof one);
    }
    if (thread_.joinable()) thread_.join();
  });
}

Status Poller::add(Endpoint& end) {
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.ptr = &end;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, end.device_.fd(), &event) < 0) {
    return errno_status(end.device_.name(), "epoll_ctl");
  }
  waiting_.fetch_add(1, std::memory_order_acq_rel);
  std::lock_guard lock(mutex_);
  waiting_.fetch_sub(1, std::memory_order_acq_rel);
  ends_.push_back(&end);
  return {};
}

void Poller::remove(Endpoint& end) {
  waiting_.fetch_add(1, std::memory_order_acq_rel);
  std::lock_guard lock(mutex_);
  waiting_.fetch_sub(1, std::memory_order_acq_rel);
  forget(end);
}

void Poller::forget(Endpoint& end) {
  auto it = std::find(ends_.begin(), ends_.end(), &end);
  if (it == ends_.end()) return;
  ends_.erase(it);
  (void)::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, end.device_.fd(), nullptr);
}

bool Poller::pass() {
  bool busy = false;
  for (std::size_t i = 0; i < ends_.size();) {
    Endpoint& end = *ends_[i];
    switch (end.read_burst()) {
      case Endpoint::ReadResult::kRead:
        busy = true;
        ++i;
        break;
      case Endpoint::ReadResult::kEmpty:
        ++i;
        break;
      case Endpoint::ReadResult::kGone:
        forget(end);
        break;
    }
  }
  return busy;
}

void Poller::run() {
  using Clock = std::chrono::steady_clock;
  auto last_frame = Clock::now();
  while (!stopping_.load(std::memory_order_relaxed)) {
    while (waiting_.load(std::memory_order_acquire) != 0) std::this_thread::yield();
    bool busy;
    {
      std::lock_guard lock(mutex_);
      busy = pass();
    }
    const auto now = Clock::now();
    if (busy) {
      last_frame = now;
      continue;
    }
    if (now - last_frame < spin_) continue;
    epoll_event events[16];
    const int n = ::epoll_wait(epoll_.get(), events, 16, -1);
    if (n < 0 && errno != EINTR) return;
    for (int i = 0; i < n; ++i) {
      if (events[i].data.ptr == nullptr || (events[i].events & (EPOLLERR | EPOLLHUP)) == 0) continue;
      // A device in error reads as empty forever; only epoll tells. The
      // event may be older than the end's removal, so the end is looked up
      // and its device asked again.
      auto* end = static_cast<Endpoint*>(events[i].data.ptr);
      std::lock_guard lock(mutex_);
      if (std::find(ends_.begin(), ends_.end(), end) == ends_.end()) continue;
      pollfd check = {end->device_.fd(), POLLIN, 0};
      if (::poll(&check, 1, 0) < 0 || (check.revents & (POLLERR | POLLHUP | POLLNVAL)) == 0) continue;
      if (end->on_gone_) end->on_gone_("device error");
      forget(*end);
    }
    last_frame = Clock::now();
  }
}

void Endpoint::input(Interface& ifp, std::span<Frame* const> burst) noexcept {
  const std::uint32_t limit = ifp.mtu() + Interface::kFrameOverhead;
  std::uint64_t refused = 0;
  for (Frame* frame : burst) {
    // ether_input() drops what the receiving MTU cannot hold.
    if (frame->wire_size() > limit || ((frame->meta.flags & kFrameVlanTag) != 0 && !insert_vlan_tag(*frame))) {
      ++refused;
      frame->release();
      continue;
    }
    virtio_net_hdr hdr = header_from_meta(frame->meta);
    iovec iov[2] = {{&hdr, sizeof hdr}, {frame->data(), frame->size()}};
    if (::writev(device_.fd(), iov, 2) < 0 && errno != EIO) ++refused;
    frame->release();
  }
  if (refused != 0) ifp.count_input_errors(refused);
}

}  // namespace epair::tap
