// Both halves of the memif handshake, without a socket: fed each message
// the other side sends, a half says what to send back. epaird's memif end
// drives the one of its role, the client API the client's, and a fuzzer
// feeds the client's any sequence of messages.
//
//   server            client
//   HELLO        ->   (makes region 0, rings, eventfds)  INIT
//   ACK          ->   ADD_REGION 0 + memfd
//  (ACK          ->   ADD_REGION 1 + memfd: the relay buffers, zero-copy)
//   ACK          ->   ADD_RING c2s 0.., then s2c 0.., each + eventfd
//   ACK          ->   CONNECT (after the last ring)
//   CONNECTED    ->   connected: the rings may be mapped
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "memif_protocol.hpp"
#include "memif_rings.hpp"
#include "unique_fd.hpp"

namespace epair::memif {

class ClientHandshake {
 public:
  struct Settings {
    std::uint32_t id = 0;
    std::string secret;
    std::string name;     ///< ours, in INIT
    std::string if_name;  ///< ours, in CONNECT
    std::uint16_t queues = 1;
    std::uint8_t log2_ring_size = 10;
    std::uint16_t buffer_size = 2048;
    /// A second region to announce and map (a RelayPool's), if any: not
    /// when the server's HELLO takes only region 0.
    int extra_region_fd = -1;
    std::uint64_t extra_region_size = 0;
  };
  /// What to send back: a message, with a descriptor to pass (still owned
  /// by the handshake), or nothing.
  struct Reply {
    std::optional<Message> message;
    int fd = -1;
  };

  explicit ClientHandshake(Settings settings) : settings_(std::move(settings)) {}

  /// The next step. ECONNRESET when the server disconnected (its reason in
  /// the message), EPROTO for a message out of turn or a server without
  /// memif 2.0, errno of a failed memfd or mapping otherwise.
  Result<Reply> on_message(const Message& message);

  bool connected() const { return state_ == State::kConnected; }
  /// The server's name from HELLO, then "/its interface" from CONNECTED.
  const std::string& peer_name() const { return peer_name_; }
  /// What was agreed: queues and ring size as the server's HELLO allowed.
  const Layout& layout() const { return memory_.layout; }
  ClientMemory& memory() { return memory_; }
  Regions& regions() { return regions_; }
  /// Whether the extra region was announced (and is regions()[1]).
  bool has_extra_region() const { return extra_region_; }

 private:
  enum class State { kHello, kInit, kSetup, kConnecting, kConnected };

  Result<Reply> start(const Hello& hello);
  Reply announce_next();

  Settings settings_;
  State state_ = State::kHello;
  std::string peer_name_;
  ClientMemory memory_;
  Regions regions_;
  std::size_t next_ring_ = 0;
  bool extra_region_ = false;
  bool extra_region_sent_ = false;
};

/// Region indexes a client may use (HELLO's max_region): DPDK and
/// libmemif use one or two.
inline constexpr std::uint16_t kMaxRegionIndex = 15;

/// The server's half: it checks what the client announces (its id and
/// secret, each region and ring, in order) and maps the regions as they
/// come. The rings are the caller's to map once ready().
class ServerHandshake {
 public:
  struct Settings {
    std::uint32_t id = 0;
    std::string secret;  ///< empty: none asked
    std::uint16_t queues = 1;
    std::uint8_t log2_ring_size = 10;
  };

  explicit ServerHandshake(Settings settings) : settings_(std::move(settings)) {}

  /// The next step, with the descriptor that came with the message: ACK to
  /// send back, or nothing once CONNECT came (then ready(), and the caller
  /// maps the rings and answers CONNECTED). EPROTO for a message out of
  /// turn or one that breaks the protocol's rules, ENOENT for another id,
  /// EACCES for a wrong secret, errno of a failed mapping otherwise.
  Result<std::optional<Message>> on_message(const Message& message, os::UniqueFd fd);

  bool ready() const { return state_ == State::kConnected; }
  /// The client's name from INIT, then "/its interface" from CONNECT.
  const std::string& peer_name() const { return peer_name_; }
  Regions& regions() { return regions_; }
  const RingAnnouncements& rings() const { return rings_; }
  RingInterrupts& interrupts() { return interrupts_; }

 private:
  enum class State { kInit, kSetup, kConnected };

  Result<std::optional<Message>> add_region(const AddRegion& region, os::UniqueFd fd);
  Result<std::optional<Message>> add_ring(const AddRing& ring, os::UniqueFd fd);

  Settings settings_;
  State state_ = State::kInit;
  std::string peer_name_;
  Regions regions_;
  RingAnnouncements rings_;
  RingInterrupts interrupts_;
};

/// ECONNRESET with the reason a DISCONNECT gives.
Status disconnected_by_peer(const Disconnect& d);

}  // namespace epair::memif
