#include "vxlan_endpoint.hpp"

#include <linux/filter.h>
#include <net/if.h>
#include <netinet/ip.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "epair/flow_hash.hpp"

namespace epair::vxlan {

namespace {

constexpr std::size_t kUdpHeader = 8;
constexpr unsigned kBurst = 32;

Status errno_status(const std::string& what) { return {errno, "vxlan: " + what + ": " + std::strerror(errno)}; }

sockaddr_storage socket_address(const Address& address, std::uint16_t port, socklen_t& length) {
  sockaddr_storage storage{};
  if (address.family == AF_INET6) {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&storage);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    sin6->sin6_addr = address.ip6;
    length = sizeof(sockaddr_in6);
  } else {
    auto* sin = reinterpret_cast<sockaddr_in*>(&storage);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    std::memcpy(&sin->sin_addr, &address.ip6, 4);
    length = sizeof(sockaddr_in);
  }
  return storage;
}

Status bind_to_device(int fd, const std::string& dev) {
  if (dev.empty()) return {};
  if (::setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, dev.c_str(), static_cast<socklen_t>(dev.size())) != 0) {
    return errno == ENODEV ? Status{ENODEV, "vxlan: no device " + dev} : errno_status("SO_BINDTODEVICE " + dev);
  }
  return {};
}

}  // namespace

Endpoint::Endpoint(std::shared_ptr<Interface> ifp, const Config& config, FramePool& pool)
    : ifp_(std::move(ifp)), config_(config), pool_(pool) {}

Endpoint::~Endpoint() { stop(); }

Result<std::shared_ptr<Endpoint>> Endpoint::open(std::shared_ptr<Interface> ifp, const Config& config,
                                                 FramePool& pool) {
  std::shared_ptr<Endpoint> end(new Endpoint(std::move(ifp), config, pool));
  const int family = config.remote.family;
  const bool v6 = family == AF_INET6;

  // Sending: UDP header and all written here, the IP header by the kernel.
  end->send_.reset(::socket(family, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_UDP));
  if (!end->send_) return errno_status("raw socket");
  const int fd = end->send_.get();
  // A raw UDP socket also gets a copy of every UDP datagram the host
  // receives: a filter that accepts nothing keeps its buffer empty.
  sock_filter drop_all{BPF_RET | BPF_K, 0, 0, 0};
  sock_fprog program{1, &drop_all};
  if (::setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &program, sizeof program) != 0) {
    return errno_status("SO_ATTACH_FILTER");
  }
  if (Status s = bind_to_device(fd, config.dev); !s) return s;
  // IPV6_PMTUDISC_DO/DONT have IP_PMTUDISC_DO/DONT's values: one constant
  // serves both families.
  const int pmtu = config.dont_fragment ? IP_PMTUDISC_DO : IP_PMTUDISC_DONT;
  if (::setsockopt(fd, v6 ? IPPROTO_IPV6 : IPPROTO_IP, v6 ? IPV6_MTU_DISCOVER : IP_MTU_DISCOVER, &pmtu, sizeof pmtu) !=
      0) {
    return errno_status("path MTU discovery");
  }
  if (v6) {
    // The UDP checksum is mandatory over IPv6: the kernel fills it.
    const int offset = 6;
    if (::setsockopt(fd, IPPROTO_IPV6, IPV6_CHECKSUM, &offset, sizeof offset) != 0) {
      return errno_status("IPV6_CHECKSUM");
    }
  }
  if (config.ttl != 0) {
    const int ttl = config.ttl;
    if (::setsockopt(fd, v6 ? IPPROTO_IPV6 : IPPROTO_IP, v6 ? IPV6_UNICAST_HOPS : IP_TTL, &ttl, sizeof ttl) != 0) {
      return errno_status("TTL");
    }
  }
  socklen_t length = 0;
  if (config.local) {
    sockaddr_storage local = socket_address(*config.local, 0, length);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&local), length) != 0) {
      return errno_status("local address " + config.local->text);
    }
  }
  sockaddr_storage remote = socket_address(config.remote, 0, length);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&remote), length) != 0) {
    return errno_status("remote " + config.remote.text);
  }

  end->receive_.reset(::socket(family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, IPPROTO_UDP));
  if (!end->receive_) return errno_status("UDP socket");
  if (Status s = bind_to_device(end->receive_.get(), config.dev); !s) return s;
  if (v6) {
    const int only = 1;
    (void)::setsockopt(end->receive_.get(), IPPROTO_IPV6, IPV6_V6ONLY, &only, sizeof only);
  }
  Address any;
  any.family = family;
  sockaddr_storage bound = socket_address(config.local.value_or(any), config.dstport, length);
  if (::bind(end->receive_.get(), reinterpret_cast<sockaddr*>(&bound), length) != 0) {
    return errno == EADDRINUSE ? Status{EADDRINUSE, "vxlan: UDP port " + std::to_string(config.dstport) + " is in use"}
                               : errno_status("bind to port " + std::to_string(config.dstport));
  }
  return end;
}

Status Endpoint::start() {
  stop_event_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!stop_event_) return errno_status("eventfd");
  receiver_ = std::thread([this] { receive_loop(); });
  return {};
}

void Endpoint::stop() {
  if (!receiver_.joinable()) return;
  const std::uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(stop_event_.get(), &one, sizeof one);
  receiver_.join();
}

std::uint16_t Endpoint::source_port(const Frame& frame) const {
  std::uint32_t hash;
  if (auto flow = flow_hash(frame.bytes())) {
    hash = *flow;
  } else {
    // Not IP: the Ethernet addresses keep one station pair on one path.
    hash = 2166136261u;
    for (std::size_t i = 0; i < 12 && i < frame.size(); ++i) hash = (hash ^ frame.data()[i]) * 16777619u;
  }
  const std::uint32_t span = std::uint32_t{config_.srcport_max} - config_.srcport_min + 1;
  return static_cast<std::uint16_t>(config_.srcport_min + hash % span);
}

// Frames end a transmitted: out to the remote, one datagram each.
void Endpoint::input(Interface&, std::span<Frame* const> burst) noexcept {
  std::uint8_t headers[kBurst][kUdpHeader + kHeaderSize];
  iovec iov[kBurst][2];
  mmsghdr messages[kBurst];
  std::size_t next = 0;
  while (next < burst.size()) {
    unsigned count = 0;
    for (; next < burst.size() && count < kBurst; ++next) {
      Frame& frame = *burst[next];
      // A large segment would need segmenting first; epaird turns the
      // peer TAP's offloads off so that none comes.
      if ((frame.meta.flags & kFrameGso) != 0 && frame.wire_size() < frame.size()) {
        counters_.add(&Counters::too_big);
        continue;
      }
      frame.complete_checksum();
      std::uint8_t* h = headers[count];
      const std::uint16_t port = source_port(frame);
      const auto length = static_cast<std::uint16_t>(kUdpHeader + kHeaderSize + frame.size());
      h[0] = static_cast<std::uint8_t>(port >> 8);
      h[1] = static_cast<std::uint8_t>(port);
      h[2] = static_cast<std::uint8_t>(config_.dstport >> 8);
      h[3] = static_cast<std::uint8_t>(config_.dstport);
      h[4] = static_cast<std::uint8_t>(length >> 8);
      h[5] = static_cast<std::uint8_t>(length);
      h[6] = h[7] = 0;  // IPv4: no checksum (RFC 7348); IPv6: the kernel's
      write_header(h + kUdpHeader, config_.vni);
      iov[count][0] = {h, kUdpHeader + kHeaderSize};
      iov[count][1] = {frame.data(), frame.size()};
      messages[count] = {};
      messages[count].msg_hdr.msg_iov = iov[count];
      messages[count].msg_hdr.msg_iovlen = 2;
      ++count;
    }
    for (unsigned sent = 0; sent < count;) {
      const int n = ::sendmmsg(send_.get(), messages + sent, count - sent, MSG_DONTWAIT);
      if (n > 0) {
        counters_.add(&Counters::sent, static_cast<unsigned>(n));
        sent += static_cast<unsigned>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      counters_.add(errno == EMSGSIZE ? &Counters::too_big : &Counters::send_errors);
      ++sent;
    }
  }
  burst[0]->pool().free_bulk(burst.data(), static_cast<std::uint32_t>(burst.size()));
}

void Endpoint::receive_loop() {
  pollfd fds[2] = {{receive_.get(), POLLIN, 0}, {stop_event_.get(), POLLIN, 0}};
  Frame* frames[kBurst];
  iovec iov[kBurst];
  mmsghdr messages[kBurst];
  for (;;) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if ((fds[1].revents & POLLIN) != 0) return;
    for (;;) {
      const std::uint32_t count = pool_.alloc_bulk(frames, kBurst);
      if (count == 0) {
        // Out of frames: read one datagram away so the socket drains.
        std::uint8_t scratch[1];
        if (::recv(receive_.get(), scratch, sizeof scratch, MSG_DONTWAIT | MSG_TRUNC) < 0) break;
        counters_.add(&Counters::no_buffer);
        continue;
      }
      for (std::uint32_t i = 0; i < count; ++i) {
        // The datagram lands 8 bytes before the frame's usual start, so that
        // dropping the VXLAN header leaves the frame where frames begin.
        (void)frames[i]->prepend(kHeaderSize);
        iov[i] = {frames[i]->data(), frames[i]->capacity() - frames[i]->headroom()};
        messages[i] = {};
        messages[i].msg_hdr.msg_iov = &iov[i];
        messages[i].msg_hdr.msg_iovlen = 1;
      }
      const int n = ::recvmmsg(receive_.get(), messages, count, MSG_DONTWAIT, nullptr);
      const std::uint32_t got = n > 0 ? static_cast<std::uint32_t>(n) : 0;
      std::uint32_t ready = 0;
      for (std::uint32_t i = 0; i < got; ++i) {
        Frame* frame = frames[i];
        const bool truncated = (messages[i].msg_hdr.msg_flags & MSG_TRUNC) != 0;
        (void)frame->resize(messages[i].msg_len);
        const Drop drop = truncated ? Drop::kBadFrame : check_datagram(frame->bytes(), config_.vni);
        if (drop != Drop::kNone) {
          counters_.add(drop == Drop::kShort      ? &Counters::short_
                        : drop == Drop::kFlags    ? &Counters::bad_flags
                        : drop == Drop::kOtherVni ? &Counters::other_vni
                                                  : &Counters::bad_frame);
          frame->release();
          continue;
        }
        (void)frame->trim_front(kHeaderSize);
        if (fill_offloaded_checksum(frame->bytes())) {
          counters_.add(&Counters::checksums_filled);
        }
        frames[ready++] = frame;
      }
      if (got < count) pool_.free_bulk(frames + got, count - got);
      if (ready != 0) {
        counters_.add(&Counters::received, ready);
        (void)ifp_->transmit_burst({frames, ready});
      }
      if (got < count) break;
    }
  }
}

}  // namespace epair::vxlan
