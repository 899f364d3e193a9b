#include "memif_endpoint.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "epair/ethernet.hpp"
#include "epair/flow_hash.hpp"
#include "memif_channel.hpp"

namespace epair::memif {

namespace {

constexpr std::uint64_t kTagListener = 0;
constexpr std::uint64_t kTagControl = 1;
constexpr std::uint64_t kTagWake = 2;
constexpr std::uint64_t kTagRetry = 3;
constexpr std::uint64_t kTagInterrupt = 4;
constexpr std::uint64_t kTagHandshakeTimer = 5;
constexpr std::uint32_t kBurst = 32;
// flow-control without rx-usecs: how often frames held back try again.
constexpr std::uint32_t kHeldBackRetryUsecs = 50;
// Region indexes a client may use: DPDK and libmemif use one or two.
constexpr std::uint16_t kMaxRegionIndex = 15;
// A RelayHop's length once its buffer has crossed to the other end.
constexpr std::uint32_t kRelayed = 0xffffffff;
// In Session::tx_relayed: the buffer holds the start of a frame.
constexpr std::uint32_t kFirstHop = 0x80000000;

Status errno_status(const std::string& what) { return {errno, "memif: " + what + ": " + std::strerror(errno)}; }

}  // namespace

Endpoint::Endpoint(std::shared_ptr<Interface> ifp, const Config& config, FramePool& pool,
                   std::chrono::milliseconds handshake_timeout)
    : ifp_(std::move(ifp)), config_(config), pool_(pool), handshake_timeout_(handshake_timeout) {}

Endpoint::~Endpoint() {
  stop();
  if (listener_ && !config_.socket.starts_with('@')) ::unlink(config_.socket.c_str());
}

Result<std::shared_ptr<Endpoint>> Endpoint::open(std::shared_ptr<Interface> ifp, const Config& config, FramePool& pool,
                                                 std::chrono::milliseconds handshake_timeout) {
  std::shared_ptr<Endpoint> end(new Endpoint(std::move(ifp), config, pool, handshake_timeout));
  if (config.zero_copy) {
    auto relay = RelayPool::for_pair(*end->ifp_, config.ring_size(), config.buffer_size);
    if (!relay) return relay.status();
    end->relay_pool_ = std::move(*relay);
    end->relay_direction_ = RelayPool::direction_of(*end->ifp_);
  }
  if (config.role == Role::kClient) return end;
  end->listener_.reset(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!end->listener_) return errno_status("socket");
  const SocketAddress address(config.socket);
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
  handshake_timer_.reset(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
  if (!epoll_ || !wake_ || !handshake_timer_) return errno_status("epoll");
  ifp_->set_endpoint_link(false);
  if (!watch(wake_.get(), kTagWake) || !watch(handshake_timer_.get(), kTagHandshakeTimer)) {
    return errno_status("epoll_ctl");
  }
  if (listener_ && !watch(listener_.get(), kTagListener)) return errno_status("epoll_ctl");
  if (config_.role == Role::kClient) {
    retry_.reset(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
    if (!retry_) return errno_status("timerfd");
    const itimerspec every_second{{1, 0}, {0, 1}};
    ::timerfd_settime(retry_.get(), 0, &every_second, nullptr);
    if (!watch(retry_.get(), kTagRetry)) return errno_status("epoll_ctl");
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
          get(counters_.connects),      get(counters_.disconnects),    get(counters_.held_back),
          get(counters_.relayed)};
}

std::string Endpoint::peer_name() const {
  std::lock_guard lock(names_mutex_);
  return peer_name_;
}

std::string Endpoint::last_disconnect() const {
  std::lock_guard lock(names_mutex_);
  return last_disconnect_;
}

bool Endpoint::watch(int fd, std::uint64_t tag) {
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.u64 = tag;
  return ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &event) == 0;
}

void Endpoint::arm_handshake_timer(bool on) {
  itimerspec when{};
  if (on) {
    const auto ns = std::chrono::nanoseconds(handshake_timeout_).count();
    when.it_value.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
    when.it_value.tv_nsec = static_cast<long>(ns % 1'000'000'000);
  }
  ::timerfd_settime(handshake_timer_.get(), 0, &when, nullptr);
}

void Endpoint::run() {
  epoll_event events[16];
  const bool moderated = config_.rx_mode == RxMode::kInterrupt && config_.rx_usecs != 0;
  // Frames held back wait for the other end on the moderation timer, with
  // interrupts masked: the peer, finding its ring full, may signal at every
  // try.
  const bool holds_back = config_.rx_mode == RxMode::kInterrupt && config_.flow_control;
  // The default timer slack, 50 us, would stretch every moderated wait.
  if (moderated || holds_back) ::prctl(PR_SET_TIMERSLACK, 1000UL);
  const timespec moderation{0, static_cast<long>(moderated ? config_.rx_usecs : kHeldBackRetryUsecs) * 1000};
  const timespec no_wait{0, 0};
  Moderation moderation_state = Moderation::kIdle;
  while (!stopping_.load(std::memory_order_acquire)) {
    const bool spin = connected() && config_.rx_mode == RxMode::kPolling;
    const bool timed = connected() && moderation_state != Moderation::kIdle;
    const int n = ::epoll_pwait2(epoll_.get(), events, 16, spin ? &no_wait : timed ? &moderation : nullptr, nullptr);
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
        case kTagHandshakeTimer:
          drain(handshake_timer_.get());
          if (session_ && !connected()) {
            disconnect("handshake not finished in " + std::to_string(handshake_timeout_.count()) + " ms", true);
          }
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
      bool any = false;
      held_back_ = false;
      while (connected() && poll_rings()) any = true;
      if ((moderated || holds_back) && connected()) {
        moderation_state = moderate(moderation_state, (moderated && any) || held_back_);
      }
    }
    if (!connected()) moderation_state = Moderation::kIdle;
  }
  disconnect("interface detached", true);
}

// NAPI's turn, on a timer: frames found with interrupts on turn them off
// and the rings are read every rx-usecs; a read that finds none turns them
// on again, and one more read a period later catches a frame the program
// put down while it still saw them off (it reads the flag without a fence
// after publishing its head, so it may miss the change).
Endpoint::Moderation Endpoint::moderate(Moderation state, bool found_frames) {
  if (found_frames) {
    if (state != Moderation::kMasked) {
      for (Ring& ring : session_->rx) mask_interrupts(ring, true);
    }
    return Moderation::kMasked;
  }
  if (state == Moderation::kMasked) {
    for (Ring& ring : session_->rx) mask_interrupts(ring, false);
    return Moderation::kLastLook;
  }
  return Moderation::kIdle;
}

void Endpoint::accept_peer() {
  os::UniqueFd fd(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
  if (!fd) return;
  if (session_) {
    (void)send_message(fd.get(), Disconnect{0, "already connected"});
    return;
  }
  begin_session(std::move(fd));
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
  const SocketAddress address(config_.socket);
  // Nobody listening yet: the timer tries again in a second.
  if (::connect(fd.get(), address.get(), address.length) != 0) return;
  begin_session(std::move(fd));
}

void Endpoint::begin_session(os::UniqueFd control) {
  auto session = std::make_unique<Session>();
  session->control = std::move(control);
  if (config_.role == Role::kClient) {
    ClientHandshake::Settings settings{
        config_.id, config_.secret, "epair", ifp_->name(), config_.queues, config_.log2_ring_size, config_.buffer_size};
    if (relay_pool_) {
      settings.extra_region_fd = relay_pool_->fd();
      settings.extra_region_size = relay_pool_->region_size();
    }
    session->client.emplace(std::move(settings));
  }
  (void)watch(session->control.get(), kTagControl);
  arm_handshake_timer(true);
  std::lock_guard lock(tx_mutex_);
  session_ = std::move(session);
}

Status Endpoint::send(const Message& message, int fd) { return send_message(session_->control.get(), message, fd); }

void Endpoint::on_control() {
  while (session_) {
    auto incoming = receive_message(session_->control.get());
    if (!incoming) {
      if (incoming.status().value() == ECONNRESET) read_before_leaving();
      // Only a peer that spoke out of turn is told why.
      disconnect(incoming.status().message(), incoming.status().value() == EPROTO);
      return;
    }
    if (!*incoming) return;
    Message& message = (*incoming)->message;
    if (std::holds_alternative<Disconnect>(message)) read_before_leaving();
    if (Status s = handle(message, std::move((*incoming)->fd)); !s) {
      disconnect(s.message(), !std::holds_alternative<Disconnect>(message));
      return;
    }
  }
}

// A peer that leaves may have put frames down just before, which a read
// every rx-usecs, or a wakeup that came late, has not reached yet: they are
// delivered, as a NIC delivers what arrived before its link went down. Its
// memory stays mapped until the session goes, so reading it is safe; one
// pass, so that a peer writing on after it left cannot hold us here.
void Endpoint::read_before_leaving() {
  if (connected()) (void)poll_rings();
}

Status Endpoint::handle(const Message& message, os::UniqueFd fd) {
  if (const auto* d = std::get_if<Disconnect>(&message)) return disconnected_by_peer(*d);
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
        if (region->index != s.regions.maps.size() || region->index > kMaxRegionIndex) {
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
        auto map = Mapping::map(fd.get(), region->size);
        if (!map) return map.status();
        s.regions.add(std::move(*map));
        return send(Ack{});
      }
      if (const auto* ring = std::get_if<AddRing>(&message)) {
        const bool c2s = (ring->flags & AddRing::kFlagC2S) != 0;
        auto& list = s.announced[c2s ? 1 : 0];
        if (ring->index != list.size() || ring->index >= config_.queues) {
          return Status{EPROTO, "ring " + std::to_string(ring->index) + " out of order"};
        }
        if (std::string problem = check_ring(*ring, s.regions.sizes, config_.log2_ring_size); !problem.empty()) {
          return Status{EPROTO, problem};
        }
        // Read when draining and written after transmitting: a peer's
        // blocking eventfd would stall either (DPDK and libmemif make them
        // non-blocking already; the flag is shared with the peer).
        if (fd) {
          if (Status nb = make_nonblocking(fd.get(), "interrupt eventfd of ring " + std::to_string(ring->index)); !nb) {
            return nb;
          }
        }
        list.push_back(*ring);
        s.announced_interrupts[c2s ? 1 : 0].push_back(std::move(fd));
        return send(Ack{});
      }
      if (const auto* connect = std::get_if<Connect>(&message)) {
        if (s.announced[0].empty() || s.announced[1].empty()) return Status{EPROTO, "connect before rings"};
        if (Status m = take_rings(s.announced, s.announced_interrupts); !m) return m;
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

Status Endpoint::take_rings(const RingAnnouncements& announced, RingInterrupts& interrupts) {
  Session& s = *session_;
  const bool polling = config_.rx_mode == RxMode::kPolling;
  auto rings = map_rings(announced, interrupts, s.regions, config_.role == Role::kServer, polling);
  if (!rings) return rings.status();
  s.rx = std::move(rings->rx);
  s.tx = std::move(rings->tx);
  for (const Ring& ring : s.rx) {
    if (!polling && ring.interrupt) (void)watch(ring.interrupt.get(), kTagInterrupt);
  }
  return {};
}

Status Endpoint::client_step(const Message& message) {
  Session& s = *session_;
  ClientHandshake& handshake = *s.client;
  auto reply = handshake.on_message(message);
  if (!reply) return reply.status();
  if (reply->message) return send(*reply->message, reply->fd);
  if (!handshake.connected()) return {};
  s.peer_name = handshake.peer_name();
  s.regions = std::move(handshake.regions());
  s.layout = handshake.layout();
  if (Status m = take_rings(handshake.memory().rings, handshake.memory().interrupts); !m) return m;
  s.relay = handshake.has_extra_region();
  if (s.relay) {
    s.rx_buffers.assign(s.rx[0].size, 0);
    s.tx_relayed.assign(s.tx[0].size, 0);
    s.hops.reserve(s.rx[0].size);
    give_relay_buffers(s);
  } else {
    // Every receive buffer goes to the server at once.
    for (Ring& ring : s.rx) give_buffers(ring, s.layout);
  }
  go_up();
  return {};
}

void Endpoint::go_up() {
  arm_handshake_timer(false);
  {
    std::lock_guard lock(tx_mutex_);
    session_->state = Session::State::kConnected;
  }
  {
    std::lock_guard lock(names_mutex_);
    peer_name_ = session_->peer_name;
  }
  connected_.store(true, std::memory_order_release);
  relay_ready_.store(session_->relay, std::memory_order_release);
  counters_.connects.fetch_add(1, std::memory_order_relaxed);
  ifp_->set_endpoint_link(true);
  spdlog::info("{}: memif connected to {}", ifp_->name(), session_->peer_name);
}

void Endpoint::disconnect(const std::string& reason, bool tell_peer) {
  if (!session_) return;
  arm_handshake_timer(false);
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
    relay_ready_.store(false, std::memory_order_release);
  }
  // The other end puts relay buffers on this session's C2S ring under
  // tx_mutex_ only: from here they are all this thread's to return.
  if (gone->relay) release_relay_buffers(*gone);
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
  // One figure for all the rings: their frames go to the same end.
  std::size_t budget = config_.flow_control ? ifp_->peer_room() : kNoLimit;
  for (Ring& ring : session_->rx) {
    const bool progressed = receive(ring, budget);
    if (!connected()) return false;
    any = any || progressed;
  }
  return any;
}

// How many frames the next burst off a receive ring may take: 0 once
// flow control has spent the budget, counted as a read held back.
std::uint32_t Endpoint::next_burst(std::uint32_t available, std::size_t budget) {
  if (budget == 0) {
    held_back_ = true;
    counters_.held_back.fetch_add(1, std::memory_order_relaxed);
    return 0;
  }
  return static_cast<std::uint32_t>(std::min<std::size_t>(std::min(available, kBurst), budget));
}

std::string Endpoint::broken_transmit_ring(const Ring& ring, std::uint32_t free_slots) {
  return "transmit ring " + std::to_string(ring.index) + " has " + std::to_string(free_slots) +
         " free descriptors of " + std::to_string(ring.size);
}

// Frames the peer put on a receive ring, chains gathered, to the end, at
// most `budget` of them (less those taken). True when frames were taken.
bool Endpoint::receive(Ring& ring, std::size_t& budget) {
  Session& s = *session_;
  const bool server = config_.role == Role::kServer;
  std::uint32_t available = receivable(ring, server);
  if (available == 0) return false;
  if (available > ring.size) {
    disconnect("receive ring " + std::to_string(ring.index) + " claims " + std::to_string(available) +
                   " descriptors of " + std::to_string(ring.size),
               true);
    return false;
  }
  if (s.relay) return receive_relayed(ring, available, budget);
  bool took = false;
  // A burst at a time: frames from the pool in one go, handed to the end
  // together, and the descriptors given back at once so that the peer
  // can fill them again while the next burst is read.
  while (available > 0) {
    // Frames, not descriptors: a chain is never split.
    const std::uint32_t want = next_burst(available, budget);
    if (want == 0) break;
    Frame* burst[kBurst];
    prefetch_buffers(ring, server, false, s.regions, s.layout, ring.cursor, want);
    std::uint32_t fresh = pool_.alloc_bulk(burst, want);
    std::uint32_t count = 0;  // burst[0, count) received, [count, fresh) still empty
    std::uint32_t taken = 0;
    for (; taken < want && available > 0; ++taken) {
      Frame* frame = count < fresh ? burst[count] : nullptr;
      if (frame == nullptr) counters_.no_buffer.fetch_add(1, std::memory_order_relaxed);
      const Chain chain =
          read_chain(ring, ring.cursor, available, s.regions, [&](const std::uint8_t* from, std::uint32_t n) {
            if (frame == nullptr) return true;
            std::uint8_t* to = frame->append(n);
            if (to != nullptr) std::memcpy(to, from, n);
            return to != nullptr;
          });
      if (!chain.complete) {
        pool_.free_bulk(burst, fresh);
        disconnect("a chain on receive ring " + std::to_string(ring.index) + " runs past the descriptors given", true);
        return false;
      }
      ring.cursor = static_cast<std::uint16_t>(ring.cursor + chain.descriptors);
      available -= chain.descriptors;
      if (frame == nullptr) continue;
      if (chain.fits && frame->size() != 0) {
        ++count;
        continue;
      }
      if (!chain.fits) counters_.bad_descriptor.fetch_add(1, std::memory_order_relaxed);
      // Its place goes to the last empty frame.
      frame->release();
      burst[count] = burst[--fresh];
    }
    if (fresh > count) pool_.free_bulk(burst + count, fresh - count);
    if (count != 0) {
      counters_.received.fetch_add(count, std::memory_order_relaxed);
      (void)ifp_->transmit_burst({burst, count});
    }
    release_received(ring, server, s.layout);
    budget -= std::min<std::size_t>(budget, taken);
    took = true;
  }
  return took;
}

// Copies frames onto a transmit ring, chaining descriptors for a frame
// larger than one buffer. False when the peer broke the ring.
bool Endpoint::transmit(Ring& ring, std::span<Frame* const> frames, std::uint32_t& sent) {
  Session& s = *session_;
  const bool server = config_.role == Role::kServer;
  std::uint32_t free_slots = transmittable(ring, server);
  // Slots the server is done with may still hold relay buffers: they go
  // back before the slots are filled again. After the count, never before:
  // the tail may move on between the two reads, and every slot counted
  // free must be one reclaimed.
  if (s.relay) reclaim_relayed(s);
  if (free_slots > ring.size) {
    tx_problem_ = broken_transmit_ring(ring, free_slots);
    return false;
  }
  std::uint16_t slot = ring.cursor;
  // What the last burst asked for ahead is here already, or on its way.
  const std::uint32_t wanted = std::min<std::uint32_t>(free_slots, static_cast<std::uint32_t>(frames.size()));
  std::uint32_t ahead = static_cast<std::uint16_t>(ring.prefetched - slot);
  if (ahead > ring.size) ahead = 0;
  if (ahead < wanted) {
    prefetch_buffers(ring, server, true, s.regions, s.layout, static_cast<std::uint16_t>(slot + ahead), wanted - ahead);
  }
  for (Frame* frame : frames) {
    frame->complete_checksum();
    const auto used = place_frame(ring, server, s.regions, s.layout, slot, free_slots, frame->bytes());
    if (!used) {
      tx_problem_ = "a descriptor the client gave on ring " + std::to_string(ring.index) + " lies outside its regions";
      return false;
    }
    if (*used == 0) {
      counters_.ring_full.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    slot = static_cast<std::uint16_t>(slot + *used);
    free_slots -= *used;
    ++sent;
  }
  if (slot != ring.cursor) publish(ring, server, slot);
  // The lines the next burst fills belong to the peer's CPU, which read
  // them last: asked for now, they arrive while that burst crosses the
  // engine, instead of stalling its stores.
  const std::uint32_t next = std::min(free_slots, kBurst);
  prefetch_buffers(ring, server, true, s.regions, s.layout, slot, next);
  ring.prefetched = static_cast<std::uint16_t>(slot + next);
  return true;
}

std::size_t Endpoint::room() noexcept {
  std::lock_guard lock(tx_mutex_);
  if (!session_ || !connected()) return kNoLimit;
  const bool server = config_.role == Role::kServer;
  std::size_t least = kNoLimit;
  for (Ring& ring : session_->tx) {
    // A ring the peer broke is input()'s to find and report.
    if (const std::uint32_t free_slots = transmittable(ring, server); free_slots <= ring.size) {
      least = std::min<std::size_t>(least, free_slots);
    }
  }
  return least;
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

// --- zero-copy ---

std::optional<std::uint32_t> Endpoint::relay_buffers_free() const {
  if (!relay_pool_) return std::nullopt;
  return relay_pool_->free_count(relay_direction_);
}

std::optional<std::uint32_t> Endpoint::relay_buffers() const {
  if (!relay_pool_) return std::nullopt;
  return relay_pool_->per_direction();
}

// The other end, when frames may cross to it as descriptors: a memif end
// of the same pool whose session took region 1.
std::shared_ptr<Endpoint> Endpoint::relay_target() {
  auto target = std::dynamic_pointer_cast<Endpoint>(ifp_->peer_endpoint());
  if (!target || target->relay_pool_ != relay_pool_ || !target->relaying()) return nullptr;
  return target;
}

// Free relay buffers onto the S2C ring, up to a whole ring given. The
// pool holds a ring's worth for this ring and as many for the other end's,
// so a whole ring is always there: the server never sees a ring partly
// given, and receive() never reads a slot past those given.
void Endpoint::give_relay_buffers(Session& s) {
  RelayPool& pool = *relay_pool_;
  Ring& ring = s.rx[0];
  const std::uint32_t mask = ring.size - 1;
  const auto until = static_cast<std::uint16_t>(ring.cursor + ring.size);
  const auto descriptor = [&](std::uint32_t buffer) {
    return Descriptor{0, 1, pool.buffer_size(), pool.offset(buffer), 0};
  };
  std::uint32_t taken[64];
  while (s.rx_given != until) {
    const std::uint32_t want = std::min<std::uint32_t>(static_cast<std::uint16_t>(until - s.rx_given), 64);
    const std::uint32_t got = pool.take(relay_direction_, {taken, want});
    for (std::uint32_t i = 0; i < got; ++i) {
      const std::uint32_t slot = s.rx_given & mask;
      s.rx_buffers[slot] = taken[i];
      write_descriptor(descriptor_at(ring.base, slot), descriptor(taken[i]));
      ++s.rx_given;
    }
    if (got < want) break;
  }
  // release: publishes the descriptors to the server's acquire of head.
  ring_index(ring.base, kRingHeadOffset).store(s.rx_given, std::memory_order_release);
}

// Relay buffers in C2S slots the server's tail has passed go back to the
// pool. A tail outside the slots in flight is left for transmittable()'s
// callers to report.
void Endpoint::reclaim_relayed(Session& s) {
  Ring& ring = s.tx[0];
  const std::uint16_t done = ring_index(ring.base, kRingTailOffset).load(std::memory_order_acquire);
  if (static_cast<std::uint16_t>(done - s.tx_reclaimed) > static_cast<std::uint16_t>(ring.cursor - s.tx_reclaimed)) {
    return;
  }
  return_relayed(s, done);
}

// Gives back the relay buffers of C2S slots from tx_reclaimed to `until`,
// counting the frames that start in them with a group destination address
// (omcasts, imcasts). Counted here rather than as they cross: the program
// that received them has just read these lines, on this CPU when epaird
// shares it, where reading them at the crossing waits on the sender's.
void Endpoint::return_relayed(Session& s, std::uint16_t until) {
  const std::uint32_t mask = s.tx[0].size - 1;
  const std::uint8_t* base = s.regions.maps[1].base();
  std::uint32_t back[64];
  std::uint32_t n = 0;
  std::uint64_t mcasts = 0;
  for (; s.tx_reclaimed != until; ++s.tx_reclaimed) {
    std::uint32_t& entry = s.tx_relayed[s.tx_reclaimed & mask];
    if (entry == 0) continue;
    const std::uint32_t buffer = (entry & ~kFirstHop) - 1;
    if ((entry & kFirstHop) != 0) mcasts += base[relay_pool_->offset(buffer)] & 0x01;
    back[n++] = buffer;
    entry = 0;
    if (n == 64) {
      relay_pool_->put(1 - relay_direction_, {back, n});
      n = 0;
    }
  }
  if (n != 0) relay_pool_->put(1 - relay_direction_, {back, n});
  if (mcasts != 0) ifp_->count_cut_through_mcasts(mcasts);
}

// A session that ends gives back every relay buffer it holds: those given
// to its server and not read, and those on its C2S ring.
void Endpoint::release_relay_buffers(Session& s) {
  if (s.rx.empty() || s.tx.empty()) return;
  std::vector<std::uint32_t> back;
  const std::uint32_t mask = s.rx[0].size - 1;
  for (std::uint16_t slot = s.rx[0].cursor; slot != s.rx_given; ++slot) back.push_back(s.rx_buffers[slot & mask]);
  relay_pool_->put(relay_direction_, back);
  return_relayed(s, s.tx[0].cursor);
}

bool Endpoint::relay_in(std::span<const RelayHop> hops, std::span<RelayFrame> frames, bool hold) {
  const auto crossing = static_cast<std::uint64_t>(
      std::count_if(frames.begin(), frames.end(), [](const RelayFrame& f) { return f.kind == RelayFrame::kCross; }));
  std::lock_guard lock(tx_mutex_);
  if (!session_ || !connected() || !session_->relay) {
    counters_.not_connected.fetch_add(crossing, std::memory_order_relaxed);
    return false;
  }
  Session& s = *session_;
  Ring& ring = s.tx[0];
  // As in transmit(): reclaimed after the count.
  std::uint32_t free_slots = transmittable(ring, false);
  reclaim_relayed(s);
  if (free_slots > ring.size) {
    tx_problem_ = broken_transmit_ring(ring, free_slots);
    signal(wake_.get());
    counters_.not_connected.fetch_add(crossing, std::memory_order_relaxed);
    return false;
  }
  const std::uint32_t mask = ring.size - 1;
  const RelayPool& pool = *relay_pool_;
  std::uint16_t slot = ring.cursor;
  std::uint64_t placed = 0;
  for (RelayFrame& frame : frames) {
    if (frame.kind != RelayFrame::kCross) continue;
    if (frame.hops > free_slots) {
      if (hold) break;
      continue;
    }
    for (std::uint32_t i = 0; i < frame.hops; ++i) {
      const RelayHop& hop = hops[frame.first_hop + i];
      const std::uint16_t flags = i + 1 < frame.hops ? kDescriptorNext : 0;
      write_descriptor(descriptor_at(ring.base, slot & mask), {flags, 1, hop.length, pool.offset(hop.buffer), 0});
      s.tx_relayed[slot & mask] = (hop.buffer + 1) | (i == 0 ? kFirstHop : 0);
      ++slot;
    }
    free_slots -= frame.hops;
    frame.placed = true;
    ++placed;
  }
  if (slot != ring.cursor) publish(ring, false, slot);
  counters_.sent.fetch_add(placed, std::memory_order_relaxed);
  if (!hold && placed != crossing) counters_.ring_full.fetch_add(crossing - placed, std::memory_order_relaxed);
  return true;
}

// receive() for a session with relay buffers on its S2C ring: each buffer
// is where this end put it (rx_buffers), whatever the server wrote in the
// descriptor but its length and flags. A burst crosses to the other end as
// descriptors while the cable is open for it (Interface::cut_through_open),
// and is copied into frames for the engine otherwise; either way the
// buffers it took are given again.
bool Endpoint::receive_relayed(Ring& ring, std::uint32_t available, std::size_t& budget) {
  Session& s = *session_;
  RelayPool& pool = *relay_pool_;
  const std::uint32_t mask = ring.size - 1;
  const std::uint8_t* base = s.regions.maps[1].base();
  const std::shared_ptr<Endpoint> target = relay_target();
  const std::uint32_t largest = ifp_->mtu() + Interface::kFrameOverhead;
  bool took = false;
  while (available > 0) {
    const std::uint32_t want = next_burst(available, budget);
    if (want == 0) break;
    // Gathered first, so that a chain that runs past the descriptors
    // given leaves nothing half done. frames[i]'s hops are s.hops from
    // first_hop on, and its slots ring.cursor + first_hop on.
    RelayFrame frames[kBurst];
    std::uint32_t taken = 0;
    std::uint16_t at = ring.cursor;
    s.hops.clear();
    for (; taken < want && available > 0; ++taken) {
      RelayFrame frame{static_cast<std::uint32_t>(s.hops.size()), 0, 0, RelayFrame::kCross, false};
      bool fits = true;
      for (;;) {
        const std::uint32_t slot = (at + frame.hops) & mask;
        const Descriptor d = read_descriptor(descriptor_at(ring.base, slot));
        ++frame.hops;
        fits = fits && d.length <= pool.buffer_size();
        s.hops.push_back({s.rx_buffers[slot], fits ? d.length : 0});
        frame.bytes += fits ? d.length : 0;
        if ((d.flags & kDescriptorNext) == 0) break;
        if (frame.hops == available) {
          disconnect("a chain on receive ring " + std::to_string(ring.index) + " runs past the descriptors given",
                     true);
          return false;
        }
      }
      at = static_cast<std::uint16_t>(at + frame.hops);
      available -= frame.hops;
      if (!fits) {
        frame.kind = RelayFrame::kBad;
      } else if (frame.bytes == 0) {
        frame.kind = RelayFrame::kEmpty;
      }
      frames[taken] = frame;
    }
    std::uint32_t consumed = taken;  // frames taken off the ring for good
    std::uint64_t bad = 0, received = 0;
    if (target && ifp_->cut_through_open()) {
      // What transmit() would refuse is counted as it would count it.
      for (std::uint32_t i = 0; i < taken; ++i) {
        if (frames[i].kind == RelayFrame::kCross &&
            (frames[i].bytes < ethernet::kHeaderSize || frames[i].bytes > largest)) {
          frames[i].kind = RelayFrame::kWrongSize;
        }
      }
      // flow-control: a frame that finds the other ring full stays on
      // this one, with those after it, as the copying path holds back.
      if (target->relay_in(s.hops, {frames, taken}, config_.flow_control) && config_.flow_control) {
        for (std::uint32_t i = 0; i < taken; ++i) {
          if (frames[i].kind == RelayFrame::kCross && !frames[i].placed) {
            consumed = i;
            held_back_ = true;
            counters_.held_back.fetch_add(1, std::memory_order_relaxed);
            break;
          }
        }
      }
      std::uint64_t placed = 0, bytes = 0, wrong_size = 0;
      for (std::uint32_t i = 0; i < consumed; ++i) {
        const RelayFrame& f = frames[i];
        bad += f.kind == RelayFrame::kBad;
        wrong_size += f.kind == RelayFrame::kWrongSize;
        received += f.kind == RelayFrame::kCross || f.kind == RelayFrame::kWrongSize;
        if (!f.placed) continue;
        ++placed;
        bytes += f.bytes;
        // Its buffers are the other end's now.
        for (std::uint32_t h = 0; h < f.hops; ++h) s.hops[f.first_hop + h].length = kRelayed;
      }
      if (wrong_size != 0) ifp_->count_output_errors(wrong_size);
      counters_.relayed.fetch_add(placed, std::memory_order_relaxed);
      ifp_->count_cut_through(placed, bytes);
    } else {
      Frame* burst[kBurst];
      Frame* ready[kBurst];
      std::uint32_t copy[kBurst];
      std::uint32_t ncopy = 0;
      for (std::uint32_t i = 0; i < taken; ++i) {
        bad += frames[i].kind == RelayFrame::kBad;
        if (frames[i].kind == RelayFrame::kCross) copy[ncopy++] = i;
      }
      const std::uint32_t fresh = pool_.alloc_bulk(burst, ncopy);
      if (fresh < ncopy) counters_.no_buffer.fetch_add(ncopy - fresh, std::memory_order_relaxed);
      std::uint32_t count = 0;
      for (std::uint32_t i = 0; i < fresh; ++i) {
        const RelayFrame& f = frames[copy[i]];
        Frame* frame = burst[i];
        bool copied = true;
        for (std::uint32_t h = 0; h < f.hops && copied; ++h) {
          const RelayHop& hop = s.hops[f.first_hop + h];
          std::uint8_t* to = frame->append(hop.length);
          if (to != nullptr) std::memcpy(to, base + pool.offset(hop.buffer), hop.length);
          copied = to != nullptr;
        }
        if (copied) {
          ready[count++] = frame;
        } else {
          ++bad;
          frame->release();
        }
      }
      received = count;
      if (count != 0) (void)ifp_->transmit_burst({ready, count});
    }
    if (bad != 0) counters_.bad_descriptor.fetch_add(bad, std::memory_order_relaxed);
    if (received != 0) counters_.received.fetch_add(received, std::memory_order_relaxed);
    const std::uint32_t hops_taken =
        consumed < taken ? frames[consumed].first_hop : static_cast<std::uint32_t>(s.hops.size());
    s.hops.resize(hops_taken);
    // Every buffer taken off the ring that did not cross goes back, and the
    // ring is given as many again.
    std::uint32_t back[kBurst];
    std::uint32_t nback = 0;
    for (const RelayHop& hop : s.hops) {
      if (hop.length == kRelayed) continue;
      back[nback++] = hop.buffer;
      if (nback == kBurst) {
        pool.put(relay_direction_, {back, nback});
        nback = 0;
      }
    }
    if (nback != 0) pool.put(relay_direction_, {back, nback});
    ring.cursor = static_cast<std::uint16_t>(ring.cursor + hops_taken);
    give_relay_buffers(s);
    budget -= std::min<std::size_t>(budget, consumed);
    took = took || consumed != 0;
    if (consumed < taken) break;
  }
  return took;
}

}  // namespace epair::memif
