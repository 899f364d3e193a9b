#include "memif_endpoint.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstring>

#include "epair/flow_hash.hpp"

namespace epair::memif {

namespace {

constexpr std::uint64_t kTagListener = 0;
constexpr std::uint64_t kTagControl = 1;
constexpr std::uint64_t kTagWake = 2;
constexpr std::uint64_t kTagRetry = 3;
constexpr std::uint64_t kTagInterrupt = 4;
constexpr std::uint32_t kBurst = 32;
// Region indexes a client may use: DPDK and libmemif use one or two.
constexpr std::uint16_t kMaxRegionIndex = 15;

Status errno_status(const std::string& what) { return {errno, "memif: " + what + ": " + std::strerror(errno)}; }

// "@name" is a name in the abstract namespace (DPDK's default), else a
// path in the file system.
struct SocketAddress {
  sockaddr_un address{};
  socklen_t length = 0;
  bool abstract = false;
  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&address); }
};

SocketAddress socket_address(const std::string& path) {
  SocketAddress a;
  a.address.sun_family = AF_UNIX;
  a.abstract = path.starts_with('@');
  const std::size_t size = std::min(path.size(), sizeof a.address.sun_path - 1);
  std::memcpy(a.address.sun_path, path.c_str(), size);
  if (a.abstract) a.address.sun_path[0] = '\0';
  a.length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + size + (a.abstract ? 0 : 1));
  return a;
}

std::atomic_ref<std::uint16_t> ring_index(std::uint8_t* ring, std::size_t offset) {
  return std::atomic_ref<std::uint16_t>(*reinterpret_cast<std::uint16_t*>(ring + offset));
}

std::uint8_t* descriptor_at(std::uint8_t* ring, std::uint32_t slot) {
  return ring + kRingHeaderSize + std::size_t{slot} * kDescriptorSize;
}

Descriptor read_descriptor(const std::uint8_t* at) {
  static_assert(sizeof(Descriptor) == kDescriptorSize);
  Descriptor d;
  std::memcpy(&d, at, sizeof d);
  return d;
}

void write_descriptor(std::uint8_t* at, const Descriptor& d) { std::memcpy(at, &d, sizeof d); }

void signal(int fd) {
  const std::uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(fd, &one, sizeof one);
}

void drain(int fd) {
  std::uint64_t value;
  [[maybe_unused]] ssize_t n = ::read(fd, &value, sizeof value);
}

}  // namespace

Endpoint::Session::~Session() {
  for (Region& r : regions) {
    if (r.base != nullptr) ::munmap(r.base, r.size);
  }
}

Endpoint::Endpoint(std::shared_ptr<Interface> ifp, const Config& config, FramePool& pool)
    : ifp_(std::move(ifp)), config_(config), pool_(pool) {}

Endpoint::~Endpoint() {
  stop();
  if (listener_ && !config_.socket.starts_with('@')) ::unlink(config_.socket.c_str());
}

Result<std::shared_ptr<Endpoint>> Endpoint::open(std::shared_ptr<Interface> ifp, const Config& config,
                                                 FramePool& pool) {
  std::shared_ptr<Endpoint> end(new Endpoint(std::move(ifp), config, pool));
  if (config.role == Role::kClient) return end;
  end->listener_.reset(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!end->listener_) return errno_status("socket");
  const SocketAddress address = socket_address(config.socket);
  if (::bind(end->listener_.get(), address.get(), address.length) != 0) {
    if (errno != EADDRINUSE) return errno_status("bind " + config.socket);
    // A socket file nobody listens on is a server's leftover: replace it.
    struct stat st {};
    os::UniqueFd probe(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    if (address.abstract || ::lstat(config.socket.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode) ||
        ::connect(probe.get(), address.get(), address.length) == 0 || errno != ECONNREFUSED) {
      return Status{EADDRINUSE, "memif: socket " + config.socket + " is in use"};
    }
    ::unlink(config.socket.c_str());
    if (::bind(end->listener_.get(), address.get(), address.length) != 0) {
      return errno_status("bind " + config.socket);
    }
  }
  if (::listen(end->listener_.get(), 4) != 0) return errno_status("listen");
  return end;
}

Status Endpoint::start() {
  epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
  wake_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!epoll_ || !wake_) return errno_status("epoll");
  ifp_->set_endpoint_link(false);
  const auto add = [&](int fd, std::uint64_t tag) {
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u64 = tag;
    return ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &event) == 0;
  };
  if (!add(wake_.get(), kTagWake)) return errno_status("epoll_ctl");
  if (listener_ && !add(listener_.get(), kTagListener)) return errno_status("epoll_ctl");
  if (config_.role == Role::kClient) {
    retry_.reset(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
    if (!retry_) return errno_status("timerfd");
    const itimerspec every_second{{1, 0}, {0, 1}};
    ::timerfd_settime(retry_.get(), 0, &every_second, nullptr);
    if (!add(retry_.get(), kTagRetry)) return errno_status("epoll_ctl");
  }
  thread_ = std::thread([this] { run(); });
  return {};
}

void Endpoint::stop() {
  if (!thread_.joinable()) return;
  stopping_.store(true, std::memory_order_release);
  signal(wake_.get());
  thread_.join();
}

Counters Endpoint::counters() const {
  const auto get = [](const std::atomic<std::uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  return {get(counters_.sent),          get(counters_.received),       get(counters_.ring_full),
          get(counters_.not_connected), get(counters_.bad_descriptor), get(counters_.no_buffer),
          get(counters_.connects),      get(counters_.disconnects)};
}

std::string Endpoint::peer_name() const {
  std::lock_guard lock(names_mutex_);
  return peer_name_;
}

std::string Endpoint::last_disconnect() const {
  std::lock_guard lock(names_mutex_);
  return last_disconnect_;
}

void Endpoint::watch_control(int fd) {
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.u64 = kTagControl;
  (void)::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &event);
}

void Endpoint::run() {
  epoll_event events[16];
  while (!stopping_.load(std::memory_order_acquire)) {
    const bool spin = connected() && config_.rx_mode == RxMode::kPolling;
    const int n = ::epoll_wait(epoll_.get(), events, 16, spin ? 0 : -1);
    for (int i = 0; i < n; ++i) {
      switch (events[i].data.u64) {
        case kTagListener:
          accept_peer();
          break;
        case kTagControl:
          on_control();
          break;
        case kTagRetry:
          drain(retry_.get());
          try_connect();
          break;
        case kTagInterrupt:
          break;
        default: {
          drain(wake_.get());
          std::string problem;
          {
            std::lock_guard lock(tx_mutex_);
            problem = std::exchange(tx_problem_, {});
          }
          if (!problem.empty()) disconnect(problem, true);
          break;
        }
      }
    }
    if (connected()) {
      // Interrupts: drained before the rings are read, so that a frame put
      // on a ring after the reading raises the eventfd again.
      if (config_.rx_mode == RxMode::kInterrupt) {
        for (Ring& ring : session_->rx) {
          if (ring.interrupt) drain(ring.interrupt.get());
        }
      }
      while (connected() && poll_rings()) {
      }
    }
  }
  disconnect("interface detached", true);
}

void Endpoint::accept_peer() {
  os::UniqueFd fd(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
  if (!fd) return;
  if (session_) {
    const Wire wire = encode(Disconnect{0, "already connected"});
    [[maybe_unused]] ssize_t n = ::send(fd.get(), wire.data(), wire.size(), MSG_NOSIGNAL);
    return;
  }
  auto session = std::make_unique<Session>();
  session->control = std::move(fd);
  session->state = Session::State::kInit;
  watch_control(session->control.get());
  {
    std::lock_guard lock(tx_mutex_);
    session_ = std::move(session);
  }
  Hello hello;
  hello.name = "epair";
  hello.max_region = kMaxRegionIndex;
  hello.max_s2c_ring = static_cast<std::uint16_t>(config_.queues - 1);
  hello.max_c2s_ring = static_cast<std::uint16_t>(config_.queues - 1);
  hello.max_log2_ring_size = config_.log2_ring_size;
  if (Status s = send(hello); !s) disconnect(s.message(), false);
}

void Endpoint::try_connect() {
  if (session_) return;
  os::UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return;
  const SocketAddress address = socket_address(config_.socket);
  // Nobody listening yet: the timer tries again in a second.
  if (::connect(fd.get(), address.get(), address.length) != 0) return;
  auto session = std::make_unique<Session>();
  session->control = std::move(fd);
  session->state = Session::State::kHello;
  watch_control(session->control.get());
  std::lock_guard lock(tx_mutex_);
  session_ = std::move(session);
}

Status Endpoint::send(const Message& message, int fd) {
  const Wire wire = encode(message);
  iovec iov{const_cast<std::uint8_t*>(wire.data()), wire.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  if (fd >= 0) {
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
  }
  if (::sendmsg(session_->control.get(), &msg, MSG_NOSIGNAL) != static_cast<ssize_t>(wire.size())) {
    return errno_status("sending " + std::string(type_name(message)));
  }
  return {};
}

void Endpoint::on_control() {
  while (session_) {
    std::uint8_t buffer[kMessageSize + 1];
    iovec iov{buffer, sizeof buffer};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    const ssize_t n = ::recvmsg(session_->control.get(), &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) {
      disconnect(n == 0 ? "peer closed the control channel" : std::string("control channel: ") + std::strerror(errno),
                 false);
      return;
    }
    // Every descriptor passed is ours to close; one per message is used.
    os::UniqueFd fd;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (std::size_t i = 0; i < count; ++i) {
        int passed;
        std::memcpy(&passed, CMSG_DATA(c) + i * sizeof(int), sizeof passed);
        if (!fd) {
          fd.reset(passed);
        } else {
          ::close(passed);
        }
      }
    }
    if ((msg.msg_flags & MSG_CTRUNC) != 0) {
      disconnect("protocol: too many descriptors in one message", true);
      return;
    }
    auto message = decode({buffer, static_cast<std::size_t>(n)});
    if (!message) {
      disconnect("protocol: " + message.status().message().substr(7), true);
      return;
    }
    if (Status s = handle(*message, std::move(fd)); !s) {
      disconnect(s.message(), !std::holds_alternative<Disconnect>(*message));
      return;
    }
  }
}

Status Endpoint::handle(const Message& message, os::UniqueFd fd) {
  if (const auto* d = std::get_if<Disconnect>(&message)) {
    return Status{ECONNRESET, "peer disconnected: " + (d->reason.empty() ? "no reason given" : d->reason)};
  }
  if (config_.role == Role::kServer) return server_step(message, std::move(fd));
  return client_step(message);
}

Status Endpoint::server_step(const Message& message, os::UniqueFd fd) {
  Session& s = *session_;
  const auto unexpected = [&] {
    return Status{EPROTO, "protocol: unexpected " + std::string(type_name(message)) + " message"};
  };
  switch (s.state) {
    case Session::State::kInit: {
      const auto* init = std::get_if<Init>(&message);
      if (init == nullptr) return unexpected();
      if (init->version != kVersion) return Status{EPROTO, "memif version mismatch"};
      if (init->id != config_.id) return Status{ENOENT, "no interface with id " + std::to_string(init->id)};
      if (init->mode != 0) return Status{EPROTO, "only Ethernet mode is supported"};
      if (!config_.secret.empty() && init->secret != config_.secret) {
        return Status{EACCES, init->secret.empty() ? "secret required" : "incorrect secret"};
      }
      s.peer_name = init->name;
      s.state = Session::State::kSetup;
      return send(Ack{});
    }
    case Session::State::kSetup: {
      if (const auto* region = std::get_if<AddRegion>(&message)) {
        if (region->index != s.regions.size() || region->index > kMaxRegionIndex) {
          return Status{EPROTO, "region " + std::to_string(region->index) + " out of order"};
        }
        if (!fd) return Status{EPROTO, "region " + std::to_string(region->index) + " without a file descriptor"};
        if (region->size == 0 || region->size > (std::uint64_t{1} << 40)) {
          return Status{EPROTO, "region of " + std::to_string(region->size) + " bytes"};
        }
        // A region that could shrink under us would fault on access.
        const int seals = ::fcntl(fd.get(), F_GET_SEALS);
        if (seals < 0 || (seals & F_SEAL_SHRINK) == 0) return Status{EPROTO, "region not sealed against shrinking"};
        struct stat st {};
        if (::fstat(fd.get(), &st) != 0 || static_cast<std::uint64_t>(st.st_size) < region->size) {
          return Status{EPROTO, "region file smaller than announced"};
        }
        void* base = ::mmap(nullptr, region->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
        if (base == MAP_FAILED) return errno_status("mapping region");
        s.regions.push_back({static_cast<std::uint8_t*>(base), region->size});
        s.region_sizes.push_back(region->size);
        return send(Ack{});
      }
      if (const auto* ring = std::get_if<AddRing>(&message)) {
        const bool c2s = (ring->flags & AddRing::kFlagC2S) != 0;
        auto& list = s.announced[c2s ? 1 : 0];
        if (ring->index != list.size() || ring->index >= config_.queues) {
          return Status{EPROTO, "ring " + std::to_string(ring->index) + " out of order"};
        }
        if (std::string problem = check_ring(*ring, s.region_sizes, config_.log2_ring_size); !problem.empty()) {
          return Status{EPROTO, problem};
        }
        // Read when draining and written after transmitting: a peer's
        // blocking eventfd would stall either (DPDK and libmemif make them
        // non-blocking already; the flag is shared with the peer).
        if (fd) {
          const int flags = ::fcntl(fd.get(), F_GETFL);
          if (flags < 0 || ::fcntl(fd.get(), F_SETFL, flags | O_NONBLOCK) != 0) {
            return errno_status("interrupt eventfd of ring " + std::to_string(ring->index));
          }
        }
        list.push_back(*ring);
        s.announced_interrupts[c2s ? 1 : 0].push_back(std::move(fd));
        return send(Ack{});
      }
      if (const auto* connect = std::get_if<Connect>(&message)) {
        if (s.announced[0].empty() || s.announced[1].empty()) return Status{EPROTO, "connect before rings"};
        if (Status m = map_rings(); !m) return m;
        if (!connect->if_name.empty()) s.peer_name += "/" + connect->if_name;
        if (Status sent = send(Connected{ifp_->name()}); !sent) return sent;
        go_up();
        return {};
      }
      return unexpected();
    }
    default:
      return unexpected();
  }
}

Status Endpoint::map_rings() {
  Session& s = *session_;
  const bool server = config_.role == Role::kServer;
  for (int dir = 0; dir < 2; ++dir) {
    const bool c2s = dir == 1;
    for (std::size_t i = 0; i < s.announced[dir].size(); ++i) {
      const AddRing& a = s.announced[dir][i];
      Ring ring;
      ring.base = s.regions[a.region].base + a.offset;
      ring.size = 1u << a.log2_ring_size;
      ring.c2s = c2s;
      ring.index = static_cast<std::uint16_t>(i);
      ring.interrupt = std::move(s.announced_interrupts[dir][i]);
      std::uint32_t cookie;
      std::memcpy(&cookie, ring.base, sizeof cookie);
      if (cookie != kCookie) return Status{EPROTO, "ring " + std::to_string(i) + " has a wrong cookie"};
      const bool receiving = server == c2s;
      if (server) {
        ring_index(ring.base, kRingHeadOffset).store(0, std::memory_order_relaxed);
        ring_index(ring.base, kRingTailOffset).store(0, std::memory_order_relaxed);
      }
      if (receiving) {
        const std::uint16_t flags = config_.rx_mode == RxMode::kPolling ? kRingFlagMaskInterrupt : 0;
        std::memcpy(ring.base + kRingFlagsOffset, &flags, sizeof flags);
        if (config_.rx_mode == RxMode::kInterrupt && ring.interrupt) {
          epoll_event event{};
          event.events = EPOLLIN;
          event.data.u64 = kTagInterrupt;
          (void)::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, ring.interrupt.get(), &event);
        }
        s.rx.push_back(std::move(ring));
      } else {
        s.tx.push_back(std::move(ring));
      }
    }
  }
  return {};
}

Status Endpoint::client_step(const Message& message) {
  Session& s = *session_;
  const auto unexpected = [&] {
    return Status{EPROTO, "protocol: unexpected " + std::string(type_name(message)) + " message"};
  };
  switch (s.state) {
    case Session::State::kHello: {
      const auto* hello = std::get_if<Hello>(&message);
      if (hello == nullptr) return unexpected();
      return client_setup(*hello);
    }
    case Session::State::kInit:
      if (!std::holds_alternative<Ack>(message)) return unexpected();
      s.state = Session::State::kSetup;
      return send(AddRegion{0, s.layout.region_size()}, s.region_fd.get());
    case Session::State::kSetup:
      if (!std::holds_alternative<Ack>(message)) return unexpected();
      return client_announce_next();
    case Session::State::kConnecting: {
      if (!std::holds_alternative<Connected>(message)) return unexpected();
      s.peer_name += "/" + std::get<Connected>(message).if_name;
      if (Status m = map_rings(); !m) return m;
      // Every receive buffer goes to the server at once.
      for (Ring& ring : s.rx) give_buffers(ring);
      go_up();
      return {};
    }
    default:
      return unexpected();
  }
}

Status Endpoint::client_setup(const Hello& hello) {
  Session& s = *session_;
  if (hello.min_version > kVersion || hello.max_version < kVersion) {
    return Status{EPROTO, "the server speaks no memif 2.0"};
  }
  s.peer_name = hello.name;
  s.layout.queues = std::min<std::uint16_t>(
      {config_.queues, static_cast<std::uint16_t>(std::min<std::uint32_t>(hello.max_c2s_ring + 1u, kMaxQueues)),
       static_cast<std::uint16_t>(std::min<std::uint32_t>(hello.max_s2c_ring + 1u, kMaxQueues))});
  const std::uint8_t log2 = std::min(config_.log2_ring_size, hello.max_log2_ring_size);
  if (log2 == 0) return Status{EPROTO, "the server offers no ring size"};
  s.layout.ring_size = 1u << log2;
  s.layout.buffer_size = config_.buffer_size;
  const std::uint64_t size = s.layout.region_size();
  s.region_fd.reset(::memfd_create("epair-memif", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!s.region_fd) return errno_status("memfd_create");
  if (::ftruncate(s.region_fd.get(), static_cast<off_t>(size)) != 0) return errno_status("region size");
  if (::fcntl(s.region_fd.get(), F_ADD_SEALS, F_SEAL_SHRINK) != 0) return errno_status("sealing the region");
  void* base = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, s.region_fd.get(), 0);
  if (base == MAP_FAILED) return errno_status("mapping the region");
  s.regions.push_back({static_cast<std::uint8_t*>(base), size});
  s.region_sizes.push_back(size);
  for (int dir = 0; dir < 2; ++dir) {
    const bool c2s = dir == 1;
    for (std::uint16_t i = 0; i < s.layout.queues; ++i) {
      AddRing ring;
      ring.flags = c2s ? AddRing::kFlagC2S : 0;
      ring.index = i;
      ring.offset = static_cast<std::uint32_t>(s.layout.ring_offset(c2s, i));
      ring.log2_ring_size = log2;
      std::uint8_t* at = s.regions[0].base + ring.offset;
      std::memcpy(at, &kCookie, sizeof kCookie);
      for (std::uint32_t slot = 0; slot < s.layout.ring_size; ++slot) {
        write_descriptor(descriptor_at(at, slot),
                         {0, 0, 0, static_cast<std::uint32_t>(s.layout.buffer_offset(c2s, i, slot)), 0});
      }
      s.announced[dir].push_back(ring);
      os::UniqueFd interrupt(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
      if (!interrupt) return errno_status("eventfd");
      s.announced_interrupts[dir].push_back(std::move(interrupt));
    }
  }
  Init init;
  init.id = config_.id;
  init.secret = config_.secret;
  init.name = "epair";
  s.state = Session::State::kInit;
  return send(init);
}

Status Endpoint::client_announce_next() {
  Session& s = *session_;
  const std::size_t total = s.announced[0].size() + s.announced[1].size();
  if (s.next_ring == total) {
    s.state = Session::State::kConnecting;
    return send(Connect{ifp_->name()});
  }
  // C2S rings first, as DPDK and libmemif announce them.
  const std::size_t c2s_count = s.announced[1].size();
  const int dir = s.next_ring < c2s_count ? 1 : 0;
  const std::size_t i = dir == 1 ? s.next_ring : s.next_ring - c2s_count;
  ++s.next_ring;
  return send(s.announced[dir][i], s.announced_interrupts[dir][i].get());
}

void Endpoint::go_up() {
  {
    std::lock_guard lock(tx_mutex_);
    session_->state = Session::State::kConnected;
  }
  {
    std::lock_guard lock(names_mutex_);
    peer_name_ = session_->peer_name;
  }
  connected_.store(true, std::memory_order_release);
  counters_.connects.fetch_add(1, std::memory_order_relaxed);
  ifp_->set_endpoint_link(true);
  spdlog::info("{}: memif connected to {}", ifp_->name(), session_->peer_name);
}

void Endpoint::disconnect(const std::string& reason, bool tell_peer) {
  if (!session_) return;
  if (tell_peer) (void)send(Disconnect{0, reason});
  const bool was_connected = connected();
  // The peer holds the interrupt eventfds too: closing ours would leave
  // their epoll registrations behind.
  for (const Ring& ring : session_->rx) {
    if (ring.interrupt) (void)::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, ring.interrupt.get(), nullptr);
  }
  std::unique_ptr<Session> gone;
  {
    std::lock_guard lock(tx_mutex_);
    gone = std::move(session_);
    connected_.store(false, std::memory_order_release);
  }
  {
    std::lock_guard lock(names_mutex_);
    peer_name_.clear();
    last_disconnect_ = reason;
  }
  counters_.disconnects.fetch_add(1, std::memory_order_relaxed);
  if (was_connected) ifp_->set_endpoint_link(false);
  spdlog::info("{}: memif disconnected: {}", ifp_->name(), reason);
}

bool Endpoint::poll_rings() {
  bool any = false;
  for (Ring& ring : session_->rx) {
    const bool progressed = receive(ring);
    if (!connected()) return false;
    any = any || progressed;
  }
  return any;
}

// Frames the peer put on a receive ring, chains gathered, to the end. True
// when descriptors were taken.
bool Endpoint::receive(Ring& ring) {
  Session& s = *session_;
  const bool server = config_.role == Role::kServer;
  const std::uint16_t produced =
      ring_index(ring.base, server ? kRingHeadOffset : kRingTailOffset).load(std::memory_order_acquire);
  std::uint16_t available = static_cast<std::uint16_t>(produced - ring.cursor);
  if (available == 0) return false;
  if (available > ring.size) {
    disconnect("receive ring " + std::to_string(ring.index) + " claims " + std::to_string(available) +
                   " descriptors of " + std::to_string(ring.size),
               true);
    return false;
  }
  const std::uint32_t mask = ring.size - 1;
  Frame* burst[kBurst];
  std::uint32_t count = 0;
  while (available > 0) {
    Frame* frame = pool_.alloc();
    bool good = frame != nullptr;
    if (!good) counters_.no_buffer.fetch_add(1, std::memory_order_relaxed);
    std::uint16_t used = 0;
    for (;;) {
      const Descriptor d = read_descriptor(descriptor_at(ring.base, (ring.cursor + used) & mask));
      ++used;
      if (good) {
        std::uint8_t* to = descriptor_fits(d, s.region_sizes) ? frame->append(d.length) : nullptr;
        if (to == nullptr) {
          good = false;
          counters_.bad_descriptor.fetch_add(1, std::memory_order_relaxed);
        } else {
          std::memcpy(to, s.regions[d.region].base + d.offset, d.length);
        }
      }
      if ((d.flags & kDescriptorNext) == 0) break;
      if (used == available) {
        if (frame != nullptr) frame->release();
        disconnect("a chain on receive ring " + std::to_string(ring.index) + " runs past the descriptors given", true);
        if (count != 0) pool_.free_bulk(burst, count);
        return false;
      }
    }
    ring.cursor = static_cast<std::uint16_t>(ring.cursor + used);
    available = static_cast<std::uint16_t>(available - used);
    if (good && frame->size() != 0) {
      burst[count++] = frame;
    } else if (frame != nullptr) {
      frame->release();
    }
    if (count == kBurst) {
      counters_.received.fetch_add(count, std::memory_order_relaxed);
      (void)ifp_->transmit_burst({burst, count});
      count = 0;
    }
  }
  if (count != 0) {
    counters_.received.fetch_add(count, std::memory_order_relaxed);
    (void)ifp_->transmit_burst({burst, count});
  }
  if (server) {
    ring_index(ring.base, kRingTailOffset).store(ring.cursor, std::memory_order_release);
  } else {
    give_buffers(ring);
  }
  return true;
}

// Client: every buffer of a receive ring the server has not been given yet
// goes to it, at our own offsets whatever the server left in the
// descriptors.
void Endpoint::give_buffers(Ring& ring) {
  const Layout& layout = session_->layout;
  const std::uint32_t mask = ring.size - 1;
  auto head = ring_index(ring.base, kRingHeadOffset);
  std::uint16_t h = head.load(std::memory_order_relaxed);
  const auto until = static_cast<std::uint16_t>(ring.cursor + ring.size);
  for (; h != until; ++h) {
    write_descriptor(
        descriptor_at(ring.base, h & mask),
        {0, 0, layout.buffer_size, static_cast<std::uint32_t>(layout.buffer_offset(false, ring.index, h & mask)), 0});
  }
  head.store(h, std::memory_order_release);
}

// Copies frames onto a transmit ring, chaining descriptors for a frame
// larger than one buffer. False when the peer broke the ring.
bool Endpoint::transmit(Ring& ring, std::span<Frame* const> frames, std::uint32_t& sent) {
  Session& s = *session_;
  const bool server = config_.role == Role::kServer;
  const std::uint32_t mask = ring.size - 1;
  std::uint32_t free_slots;
  if (server) {
    const std::uint16_t given = ring_index(ring.base, kRingHeadOffset).load(std::memory_order_acquire);
    free_slots = static_cast<std::uint16_t>(given - ring.cursor);
  } else {
    const std::uint16_t done = ring_index(ring.base, kRingTailOffset).load(std::memory_order_acquire);
    const auto in_flight = static_cast<std::uint16_t>(ring.cursor - done);
    free_slots = in_flight > ring.size ? ring.size + 1 : ring.size - in_flight;
  }
  if (free_slots > ring.size) {
    tx_problem_ = "transmit ring " + std::to_string(ring.index) + " has " + std::to_string(free_slots) +
                  " free descriptors of " + std::to_string(ring.size);
    return false;
  }
  std::uint16_t slot = ring.cursor;
  for (Frame* frame : frames) {
    frame->complete_checksum();
    const std::uint8_t* from = frame->data();
    std::uint32_t left = frame->size();
    std::uint16_t at = slot;
    std::uint32_t used = 0;
    while (left != 0 && used < free_slots) {
      std::uint8_t* place = descriptor_at(ring.base, at & mask);
      Descriptor d;
      if (server) {
        d = read_descriptor(place);
        if (d.length == 0 || !descriptor_fits(d, s.region_sizes)) {
          tx_problem_ =
              "a descriptor the client gave on ring " + std::to_string(ring.index) + " lies outside its regions";
          return false;
        }
      } else {
        d = {0, 0, s.layout.buffer_size,
             static_cast<std::uint32_t>(s.layout.buffer_offset(true, ring.index, at & mask)), 0};
      }
      const std::uint32_t n = std::min(d.length, left);
      std::memcpy(s.regions[d.region].base + d.offset, from, n);
      from += n;
      left -= n;
      d.length = n;
      d.flags = left != 0 ? kDescriptorNext : 0;
      write_descriptor(place, d);
      ++at;
      ++used;
    }
    if (left != 0) {
      counters_.ring_full.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    slot = at;
    free_slots -= used;
    ++sent;
  }
  if (slot != ring.cursor) {
    ring.cursor = slot;
    ring_index(ring.base, server ? kRingTailOffset : kRingHeadOffset).store(slot, std::memory_order_release);
    std::uint16_t flags;
    std::memcpy(&flags, ring.base + kRingFlagsOffset, sizeof flags);
    if ((flags & kRingFlagMaskInterrupt) == 0 && ring.interrupt) signal(ring.interrupt.get());
  }
  return true;
}

// Frames the end received: onto the memif's transmit rings, each flow on
// one ring.
void Endpoint::input(Interface&, std::span<Frame* const> burst) noexcept {
  {
    std::lock_guard lock(tx_mutex_);
    // The session's state changes on the control thread without the lock
    // during the handshake; connected_ is set once the rings are mapped.
    if (!session_ || !connected()) {
      counters_.not_connected.fetch_add(burst.size(), std::memory_order_relaxed);
    } else {
      std::vector<Ring>& rings = session_->tx;
      std::uint32_t sent = 0;
      bool broken = false;
      std::size_t start = 0;
      const auto ring_of = [&](const Frame* f) -> std::size_t {
        if (rings.size() == 1) return 0;
        return flow_hash(f->bytes()).value_or(0) % rings.size();
      };
      while (start < burst.size() && !broken) {
        const std::size_t r = ring_of(burst[start]);
        std::size_t end = start + 1;
        while (end < burst.size() && ring_of(burst[end]) == r) ++end;
        broken = !transmit(rings[r], burst.subspan(start, end - start), sent);
        start = end;
      }
      counters_.sent.fetch_add(sent, std::memory_order_relaxed);
      if (broken) signal(wake_.get());
    }
  }
  burst[0]->pool().free_bulk(burst.data(), static_cast<std::uint32_t>(burst.size()));
}

}  // namespace epair::memif
