#include "epair/memif_client.hpp"

#include <poll.h>
#include <sys/epoll.h>

#include <algorithm>
#include <cstring>
#include <thread>
#include <vector>

#include "memif_channel.hpp"
#include "memif_handshake.hpp"
#include "memif_rings.hpp"

namespace epair::memif {

namespace {

constexpr std::uint64_t kTagControl = 0;
constexpr std::uint64_t kTagInterrupt = 1;

Status invalid(const std::string& what) { return {EINVAL, "memif: " + what}; }

Status check(const ClientOptions& o) {
  if (o.socket.empty() || o.socket == "@") return invalid("no socket given");
  if (o.socket.size() >= sizeof(sockaddr_un::sun_path)) return invalid("socket path too long: " + o.socket);
  if (o.queues == 0 || o.queues > kMaxQueues) return invalid("queues must be 1 to 255");
  if (o.log2_ring_size == 0 || o.log2_ring_size > kMaxLog2RingSize) return invalid("log2_ring_size must be 1 to 14");
  if (o.buffer_size < 64) return invalid("buffer_size must be at least 64");
  if (o.secret.size() > kSecretSize) return invalid("secret longer than 24 bytes");
  if (o.timeout.count() <= 0) return invalid("timeout must be positive");
  return {};
}

}  // namespace

struct Client::State {
  os::UniqueFd control;
  os::UniqueFd epoll;
  std::string peer_name;
  Regions regions;
  Layout layout;
  std::vector<Ring> rx;
  std::vector<Ring> tx;
  bool connected = false;
  std::string reason;
  ClientCounters counters;

  // Frees the rings and the memory (the server keeps its own mapping).
  // The server holds our eventfds too, so closing them would leave their
  // epoll registrations behind; the control socket, shut down, stays
  // readable so that a caller polling event_fd() sees the end.
  void disconnect(const std::string& why, bool tell_server) {
    if (!connected) return;
    if (tell_server) (void)send_message(control.get(), Disconnect{0, why});
    connected = false;
    reason = why;
    for (const Ring& ring : rx) {
      if (ring.interrupt) (void)::epoll_ctl(epoll.get(), EPOLL_CTL_DEL, ring.interrupt.get(), nullptr);
    }
    ::shutdown(control.get(), SHUT_RDWR);
    rx.clear();
    tx.clear();
    regions = {};
  }
};

Client::Client(std::unique_ptr<State> state) : state_(std::move(state)) {}

Client::~Client() { state_->disconnect("client closed", true); }

Result<std::unique_ptr<Client>> Client::connect(const ClientOptions& options) {
  if (Status s = check(options); !s) return s;
  auto state = std::make_unique<State>();
  const std::string& path = options.socket;
  state->control.reset(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!state->control) return Status{errno, std::string("memif: socket: ") + std::strerror(errno)};
  const SocketAddress address(path);
  if (::connect(state->control.get(), address.get(), address.length) != 0) {
    return Status{errno, "memif: connect " + path + ": " + std::strerror(errno)};
  }

  ClientHandshake handshake({options.id, options.secret, options.name, options.name, options.queues,
                             options.log2_ring_size, options.buffer_size});
  const auto deadline = std::chrono::steady_clock::now() + options.timeout;
  const auto failed = [&](const Status& s) { return Status{s.value(), "memif: " + path + ": " + s.message()}; };
  while (!handshake.connected()) {
    auto incoming = receive_message(state->control.get());
    if (!incoming) return failed(incoming.status());
    if (!*incoming) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      pollfd p{state->control.get(), POLLIN, 0};
      if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) == 0) {
        return Status{ETIMEDOUT,
                      "memif: " + path + ": no handshake within " + std::to_string(options.timeout.count()) + " ms"};
      }
      continue;
    }
    auto reply = handshake.on_message((*incoming)->message);
    if (!reply) {
      if (reply.status().value() == EPROTO)
        (void)send_message(state->control.get(), Disconnect{0, reply.status().message()});
      return failed(reply.status());
    }
    if (reply->message) {
      if (Status s = send_message(state->control.get(), *reply->message, reply->fd); !s) return s;
    }
  }

  State& s = *state;
  s.peer_name = handshake.peer_name();
  s.layout = handshake.layout();
  s.regions = std::move(handshake.regions());
  auto rings = map_rings(handshake.memory().rings, handshake.memory().interrupts, s.regions, false, options.polling);
  if (!rings) return failed(rings.status());
  s.rx = std::move(rings->rx);
  s.tx = std::move(rings->tx);
  for (Ring& ring : s.rx) give_buffers(ring, s.layout);

  s.epoll.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!s.epoll) return Status{errno, std::string("memif: epoll: ") + std::strerror(errno)};
  const auto watch = [&](int fd, std::uint64_t tag) {
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u64 = tag;
    return ::epoll_ctl(s.epoll.get(), EPOLL_CTL_ADD, fd, &event) == 0;
  };
  bool watched = watch(s.control.get(), kTagControl);
  for (const Ring& ring : s.rx) {
    if (!options.polling && ring.interrupt) watched = watched && watch(ring.interrupt.get(), kTagInterrupt);
  }
  if (!watched) return Status{errno, std::string("memif: epoll_ctl: ") + std::strerror(errno)};
  s.connected = true;
  return std::unique_ptr<Client>(new Client(std::move(state)));
}

std::size_t Client::send(std::span<const std::span<const std::uint8_t>> frames, std::uint16_t queue) {
  State& s = *state_;
  if (!s.connected || queue >= s.tx.size()) return 0;
  Ring& ring = s.tx[queue];
  std::uint32_t free_slots = transmittable(ring, false);
  if (free_slots > ring.size) {
    s.disconnect("transmit ring " + std::to_string(queue) + " was broken by the server", true);
    return 0;
  }
  std::uint16_t slot = ring.cursor;
  std::size_t sent = 0;
  for (const auto& frame : frames) {
    const auto used = place_frame(ring, false, s.regions, s.layout, slot, free_slots, frame);
    if (!used || *used == 0) break;
    slot = static_cast<std::uint16_t>(slot + *used);
    free_slots -= *used;
    ++sent;
  }
  s.counters.ring_full += frames.size() - sent;
  s.counters.sent += sent;
  if (slot != ring.cursor && publish(ring, false, slot)) ++s.counters.interrupts;
  return sent;
}

std::size_t Client::receive(std::span<Packet> burst, std::uint16_t queue) {
  State& s = *state_;
  if (!s.connected || queue >= s.rx.size()) return 0;
  Ring& ring = s.rx[queue];
  std::uint32_t available = receivable(ring, false);
  if (available > ring.size) {
    s.disconnect("receive ring " + std::to_string(queue) + " was broken by the server", true);
    return 0;
  }
  std::size_t count = 0;
  while (available > 0 && count < burst.size()) {
    Packet& packet = burst[count];
    packet.size = 0;
    bool too_long = false;
    const Chain chain =
        read_chain(ring, ring.cursor, available, s.regions, [&](const std::uint8_t* from, std::uint32_t n) {
          too_long = n > packet.capacity - packet.size;
          if (too_long) return false;
          std::memcpy(packet.data + packet.size, from, n);
          packet.size += n;
          return true;
        });
    if (!chain.complete) {
      s.disconnect("a chain on receive ring " + std::to_string(queue) + " runs past the descriptors given", true);
      return count;
    }
    ring.cursor = static_cast<std::uint16_t>(ring.cursor + chain.descriptors);
    available -= chain.descriptors;
    if (!chain.fits) {
      ++(too_long ? s.counters.too_long : s.counters.bad_descriptor);
    } else if (packet.size != 0) {
      ++count;
    }
  }
  s.counters.received += count;
  release_received(ring, false, s.layout);
  return count;
}

bool Client::flush(std::chrono::milliseconds timeout) {
  State& s = *state_;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  // The server does not signal what it read: look again every 100 us.
  for (;;) {
    const bool taken = std::all_of(s.tx.begin(), s.tx.end(), [](Ring& ring) {
      return ring_index(ring.base, kRingTailOffset).load(std::memory_order_acquire) == ring.cursor;
    });
    if (!s.connected || taken) return s.connected;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
}

bool Client::wait(std::chrono::milliseconds timeout) {
  State& s = *state_;
  if (!s.connected) return false;
  epoll_event events[8];
  const int n = ::epoll_wait(s.epoll.get(), events, 8, static_cast<int>(std::max<std::int64_t>(timeout.count(), 0)));
  for (int i = 0; i < n && s.connected; ++i) {
    if (events[i].data.u64 == kTagInterrupt) continue;
    // Once connected, every message the server may send ends the
    // connection: one read is all there is to handle.
    auto incoming = receive_message(s.control.get());
    if (!incoming) {
      s.disconnect(incoming.status().message(), incoming.status().value() == EPROTO);
    } else if (!*incoming) {
      continue;
    } else if (const auto* d = std::get_if<Disconnect>(&(*incoming)->message)) {
      s.disconnect(disconnected_by_peer(*d).message(), false);
    } else {
      s.disconnect("protocol: unexpected " + std::string(type_name((*incoming)->message)) + " message", true);
    }
  }
  // Interrupts are read back after the events, so that a frame put on a
  // ring after the caller's next receive() raises them again.
  for (const Ring& ring : s.rx) {
    if (ring.interrupt) drain(ring.interrupt.get());
  }
  return n > 0;
}

int Client::event_fd() const { return state_->epoll.get(); }
bool Client::connected() const { return state_->connected; }
const std::string& Client::disconnect_reason() const { return state_->reason; }
const std::string& Client::peer_name() const { return state_->peer_name; }
std::uint16_t Client::queues() const { return state_->layout.queues; }
std::uint32_t Client::ring_size() const { return state_->layout.ring_size; }
ClientCounters Client::counters() const { return state_->counters; }

}  // namespace epair::memif
