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

#include "epair/cut_through.hpp"
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
// flow-control without rx-usecs: how often frames held back try again.
constexpr std::uint32_t kHeldBackRetryUsecs = 50;

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

CounterTable Endpoint::counter_table() const {
  CounterTable table = tabulate<Counters>(counters(), kCounterFields);
  if (!config_.flow_control) table.hide_in_text("held_back");
  table.rows.push_back({&kConnectedInfo, connected() ? 1u : 0u, false});
  return table;
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
  } else {
    session->server.emplace(
        ServerHandshake::Settings{config_.id, config_.secret, config_.queues, config_.log2_ring_size});
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
  ServerHandshake& handshake = *s.server;
  auto reply = handshake.on_message(message, std::move(fd));
  if (!reply) return reply.status();
  if (*reply) return send(**reply);
  s.peer_name = handshake.peer_name();
  s.regions = std::move(handshake.regions());
  if (Status m = take_rings(handshake.rings(), handshake.interrupts()); !m) return m;
  if (Status sent = send(Connected{ifp_->name()}); !sent) return sent;
  go_up();
  return {};
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
    std::lock_guard lock(names_mutex_);
    peer_name_ = session_->peer_name;
  }
  connected_.store(true, std::memory_order_release);
  relay_ready_.store(session_->relay, std::memory_order_release);
  counters_.add(&Counters::connects);
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
  // The reason is there before connected() says false: whoever sees the
  // peer gone can ask why.
  {
    std::lock_guard lock(names_mutex_);
    last_disconnect_ = reason;
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
  }
  counters_.add(&Counters::disconnects);
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
    counters_.add(&Counters::held_back);
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
      if (frame == nullptr) counters_.add(&Counters::no_buffer);
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
      if (!chain.fits) counters_.add(&Counters::bad_descriptor);
      // Its place goes to the last empty frame.
      frame->release();
      burst[count] = burst[--fresh];
    }
    if (fresh > count) pool_.free_bulk(burst + count, fresh - count);
    if (count != 0) {
      counters_.add(&Counters::received, count);
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
      counters_.add(&Counters::ring_full);
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
      counters_.add(&Counters::not_connected, burst.size());
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
      counters_.add(&Counters::sent, sent);
      if (broken) signal(wake_.get());
    }
  }
  burst[0]->pool().free_bulk(burst.data(), static_cast<std::uint32_t>(burst.size()));
}

}  // namespace epair::memif
