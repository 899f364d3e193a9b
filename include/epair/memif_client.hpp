// A memif client for a program of your own: it connects to a memif server
// (an epair end after `epairctl NAME attach memif socket PATH`, or DPDK's
// net_memif, VPP or libmemif in role server) and moves Ethernet frames in
// bursts, without DPDK and without an engine. Link with epair::memif.
//
//   auto client = epair::memif::Client::connect({.socket = "/run/epair/memif.sock"});
//   if (!client) fail(client.status().message());
//   (*client)->send(frames);                 // copied onto the C2S ring
//   (*client)->wait(std::chrono::seconds(1));
//   std::size_t n = (*client)->receive(packets);  // copied off the S2C ring
//
// The client makes the shared memory (one sealed memfd region with the
// rings and every buffer) and an interrupt eventfd per ring, as memif's
// client role does. Frames are copied in and out of that memory, so a
// caller's buffers are never shared with the server. Linux only.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "epair/status.hpp"

namespace epair::memif {

struct ClientOptions {
  /// The server's socket: a path, or @name in the abstract namespace.
  std::string socket;
  /// The interface id the server listens for (`attach memif ... id N`).
  std::uint32_t id = 0;
  /// Sent in INIT; a server with a secret refuses any other.
  std::string secret;
  /// Our name, as the server shows it (at most 31 characters are sent).
  std::string name = "epair-memif-client";
  /// Queue pairs asked for; the server may grant fewer (queues()).
  std::uint16_t queues = 1;
  /// Descriptors per ring, as a power of two (10: 1024); the server may
  /// lower it (ring_size()).
  std::uint8_t log2_ring_size = 10;
  /// Bytes per buffer; a longer frame is chained over several.
  std::uint16_t buffer_size = 2048;
  /// true: the server need not signal our eventfds, and wait() is of no
  /// use; the caller polls receive().
  bool polling = false;
  /// How long connect() may take, handshake included.
  std::chrono::milliseconds timeout{5000};
};

/// Room for one received frame: receive() copies a frame to data and sets
/// size; a frame longer than capacity is dropped and counted.
struct Packet {
  std::uint8_t* data = nullptr;
  std::uint32_t capacity = 0;
  std::uint32_t size = 0;
};

struct ClientCounters {
  std::uint64_t sent = 0;            ///< frames put on the transmit rings
  std::uint64_t received = 0;        ///< frames taken off the receive rings
  std::uint64_t ring_full = 0;       ///< frames send() could not place
  std::uint64_t too_long = 0;        ///< dropped: longer than the Packet's capacity
  std::uint64_t bad_descriptor = 0;  ///< dropped: a buffer outside our region
  std::uint64_t interrupts = 0;      ///< eventfd signals to the server (those it had not masked)
};

/// One connection. Not thread-safe: one thread at a time calls it (send()
/// and receive() of different queues included). Destroying it sends
/// DISCONNECT and releases the memory and descriptors.
class Client {
 public:
  /// Connects and completes the handshake. Errors: EINVAL for bad options;
  /// ENOENT or ECONNREFUSED when no server listens ("memif: connect PATH:
  /// ..."); ECONNRESET when the server refused us, with its reason
  /// ("peer disconnected: incorrect secret"); ETIMEDOUT when the handshake
  /// did not finish within options.timeout; EPROTO for a server that
  /// breaks the protocol.
  static Result<std::unique_ptr<Client>> connect(const ClientOptions& options);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  /// Copies frames onto queue's C2S ring, in order, and wakes the server
  /// once; returns how many went. The rest did not fit (the server has not
  /// read enough yet): call again later. 0 when not connected().
  std::size_t send(std::span<const std::span<const std::uint8_t>> frames, std::uint16_t queue = 0);
  /// Copies up to burst.size() frames off queue's S2C ring into burst and
  /// gives their buffers back to the server; returns how many.
  std::size_t receive(std::span<Packet> burst, std::uint16_t queue = 0);
  /// Waits until the server has taken every frame send() put on the
  /// rings, at most timeout: frames still on a ring are lost when the
  /// client is destroyed. True when all were taken.
  bool flush(std::chrono::milliseconds timeout);
  /// Sleeps until a receive ring may have frames or the control channel
  /// has news (handled here: a DISCONNECT ends the connection), at most
  /// timeout. True when woken, false on timeout.
  bool wait(std::chrono::milliseconds timeout);
  /// A descriptor for the caller's own poll/epoll: readable when wait()
  /// would return at once.
  int event_fd() const;

  /// False once the server disconnected, the control channel closed, or
  /// the server broke a ring; disconnect_reason() says which.
  bool connected() const;
  const std::string& disconnect_reason() const;
  /// The server's name and interface, as it announced them ("epair/epair0b").
  const std::string& peer_name() const;
  std::uint16_t queues() const;
  std::uint32_t ring_size() const;
  ClientCounters counters() const;

 private:
  struct State;
  explicit Client(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace epair::memif
