// The memif endpoint: the stack behind an end is a user-space packet
// program (DPDK's net_memif, VPP, libmemif) joined over memif. What the end
// receives is copied into the memif's transmit rings; what the program
// puts on its rings is transmitted on the end, towards its peer.
//
// One thread per end runs the control channel (listening as server, or
// connecting and retrying every second as client) and reads the receive
// rings: asleep in epoll on their interrupt eventfds in interrupt mode
// (with rx-usecs, on a timer while frames keep coming), spinning over them
// in polling mode. Transmitting runs on the engine's
// worker, under a mutex the control thread also takes to tear a connection
// down, so no frame is written to memory that is being unmapped.
//
// Everything in the shared memory is the peer's to change at any moment:
// each descriptor is copied once and checked against the region sizes
// before use, head and tail are checked against the ring size, and regions
// must be sealed against shrinking so that no access can fault.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "counter_table.hpp"
#include "epair/interface.hpp"
#include "memif_handshake.hpp"
#include "memif_protocol.hpp"
#include "memif_relay.hpp"
#include "memif_rings.hpp"
#include "unique_fd.hpp"

namespace epair::memif {

struct Counters {
  std::uint64_t sent = 0;            ///< frames put on the transmit rings
  std::uint64_t received = 0;        ///< frames taken off the receive rings
  std::uint64_t ring_full = 0;       ///< dropped: no free descriptors
  std::uint64_t not_connected = 0;   ///< dropped: no peer
  std::uint64_t bad_descriptor = 0;  ///< dropped: outside the regions, or a chain too long
  std::uint64_t no_buffer = 0;       ///< dropped: the frame pool was empty
  std::uint64_t connects = 0;
  std::uint64_t disconnects = 0;
  std::uint64_t held_back = 0;  ///< reads that left frames on a ring: no room beyond the cable (flow-control)
  std::uint64_t relayed = 0;    ///< of received: crossed to the other end's ring uncopied (zero-copy)
};

// How each counter is shown: key, words, clause, heading, metric, label.
// connects has no metric of its own; relayed is on its own text line.
inline constexpr CounterField<Counters> kCounterFields[] = {
    {&Counters::sent, {"sent", "sent", 0, "", "epair_memif_packets_total", "direction=\"sent\""}},
    {&Counters::received, {"received", "received", 0, "", "epair_memif_packets_total", "direction=\"received\""}},
    {&Counters::ring_full,
     {"ring_full", "ring full", 1, "dropped: ", "epair_memif_dropped_packets_total", "cause=\"ring_full\""}},
    {&Counters::not_connected,
     {"not_connected", "not connected", 1, "", "epair_memif_dropped_packets_total", "cause=\"not_connected\""}},
    {&Counters::bad_descriptor,
     {"bad_descriptor", "bad descriptors", 1, "", "epair_memif_dropped_packets_total", "cause=\"bad_descriptor\""}},
    {&Counters::no_buffer,
     {"no_buffer", "no buffer", 1, "", "epair_memif_dropped_packets_total", "cause=\"no_buffer\""}},
    {&Counters::connects, {"connects", "connects", 2, "", "", ""}},
    {&Counters::disconnects, {"disconnects", "disconnects", 2, "", "epair_memif_disconnects_total", ""}},
    {&Counters::held_back, {"held_back", "reads held back", 3, "", "epair_memif_held_back_total", ""}},
    {&Counters::relayed, {"relayed", "", 4, "", "epair_memif_relayed_packets_total", ""}},
};

/// Not a counter but shown with them: 1 while the peer is connected.
inline constexpr CounterInfo kConnectedInfo{"", "", 5, "", "epair_memif_connected", ""};

inline constexpr MetricFamily kMetricFamilies[] = {
    {"epair_memif_packets_total", "counter",
     "Frames a memif end put on its transmit rings and took off its receive rings, by direction. memif ends only."},
    {"epair_memif_dropped_packets_total", "counter",
     "What a memif end dropped, by cause: ring_full, not_connected, bad_descriptor, no_buffer."},
    {"epair_memif_held_back_total", "counter",
     "Reads of a memif end with flow-control on that left frames on the peer's ring because the other end had no "
     "room."},
    {"epair_memif_relayed_packets_total", "counter",
     "Frames a memif end with zero-copy on took off its receive rings and handed to the other end's ring as "
     "descriptors, uncopied (a share of the received ones)."},
    {"epair_memif_connected", "gauge", "1 while a memif end's peer is connected."},
    {"epair_memif_disconnects_total", "counter",
     "Control channels of a memif end that ended, for any reason (see epairctl NAME)."},
};

/// How long a peer has from connecting to CONNECTED before it is
/// disconnected: a server has one session at a time, and a peer that
/// stalls must not hold it.
inline constexpr std::chrono::milliseconds kHandshakeTimeout{5000};

class Endpoint final : public epair::Endpoint {
 public:
  /// As server, listens on the socket (EADDRINUSE when something does);
  /// as client, only remembers it.
  static Result<std::shared_ptr<Endpoint>> open(std::shared_ptr<Interface> ifp, const Config& config, FramePool& pool,
                                                std::chrono::milliseconds handshake_timeout = kHandshakeTimeout);
  ~Endpoint() override;
  Endpoint(const Endpoint&) = delete;
  Endpoint& operator=(const Endpoint&) = delete;

  Status start();
  /// Disconnects (reason "interface detached"), joins the thread; idempotent.
  void stop();

  const Config& config() const { return config_; }
  Counters counters() const { return counters_.snapshot(); }
  /// The counters, and whether the peer is connected, as the daemon shows
  /// them: held_back only in the text of an end with flow-control.
  CounterTable counter_table() const;
  bool connected() const { return connected_.load(std::memory_order_acquire); }
  /// The peer's name (from its messages) while connected; the last
  /// disconnect's reason, set before connected() turns false.
  std::string peer_name() const;
  std::string last_disconnect() const;

  void input(Interface& ifp, std::span<Frame* const> burst) noexcept override;
  /// Free descriptors on the fullest transmit ring while connected;
  /// kNoLimit while not, when frames are dropped whatever the peer does.
  std::size_t room() noexcept override;

  /// zero-copy: whether the session now in place announced the pair's
  /// relay buffers, and how many buffers of this end's direction are free
  /// (all of them once both ends' peers are gone).
  bool relaying() const { return relay_ready_.load(std::memory_order_acquire); }
  std::optional<std::uint32_t> relay_buffers_free() const;
  std::optional<std::uint32_t> relay_buffers() const;

 private:
  // Frames read or written at a time.
  static constexpr std::uint32_t kBurst = 32;

  // A control channel from accept/connect to disconnect, and what it set up.
  struct Session {
    os::UniqueFd control;
    std::optional<ServerHandshake> server;  // a server's; after CONNECT it refuses all but DISCONNECT
    std::optional<ClientHandshake> client;  // a client's
    std::string peer_name;
    Regions regions;
    Layout layout;  // a client's buffers
    std::vector<Ring> rx;
    std::vector<Ring> tx;
    // zero-copy, when the server took region 1: the relay buffer given in
    // each slot of the S2C ring up to rx_given (head), and the one in each
    // slot of the C2S ring (+1; 0 for the end's own buffer) until the
    // server's tail passes tx_reclaimed.
    bool relay = false;
    std::vector<std::uint32_t> rx_buffers;
    std::uint16_t rx_given = 0;
    std::vector<std::uint32_t> tx_relayed;
    std::uint16_t tx_reclaimed = 0;
    std::vector<RelayHop> hops;
  };

  // Interrupt moderation (rx-usecs): kIdle sleeps until an interrupt;
  // kMasked reads the rings every rx-usecs with interrupts off; kLastLook
  // has them on again and reads once more after rx-usecs.
  enum class Moderation { kIdle, kMasked, kLastLook };

  Endpoint(std::shared_ptr<Interface> ifp, const Config& config, FramePool& pool,
           std::chrono::milliseconds handshake_timeout);
  void run();
  Moderation moderate(Moderation state, bool found_frames);
  void accept_peer();
  void try_connect();
  void begin_session(os::UniqueFd control);
  void on_control();
  void read_before_leaving();
  Status handle(const Message& message, os::UniqueFd fd);
  Status server_step(const Message& message, os::UniqueFd fd);
  Status client_step(const Message& message);
  Status send(const Message& message, int fd = -1);
  Status take_rings(const RingAnnouncements& announced, RingInterrupts& interrupts);
  void go_up();
  void disconnect(const std::string& reason, bool tell_peer);
  bool watch(int fd, std::uint64_t tag);
  void arm_handshake_timer(bool on);
  bool poll_rings();
  bool receive(Ring& ring, std::size_t& budget);
  bool transmit(Ring& ring, std::span<Frame* const> frames, std::uint32_t& sent);
  std::uint32_t next_burst(std::uint32_t available, std::size_t budget);
  static std::string broken_transmit_ring(const Ring& ring, std::uint32_t free_slots);
  // memif_zero_copy.cpp
  struct RelayBurst;
  // receive() for a session with relay buffers, `available` checked.
  bool receive_relayed(Ring& ring, std::uint32_t available, std::size_t& budget);
  bool gather_relayed(Ring& ring, std::uint32_t want, std::uint32_t& available, RelayBurst& burst);
  void cross_relayed(Endpoint& target, RelayBurst& burst);
  void copy_relayed(RelayBurst& burst);
  void return_relay_buffers(Ring& ring, const RelayBurst& burst);
  std::shared_ptr<Endpoint> relay_target();
  // On the other end's thread: puts the frames of kind kCross, whose
  // buffers are in relay_pool_, on this end's C2S ring, marking those
  // placed; with hold, none after the first that finds no room. False when
  // there is no ring to put them on (all dropped, counted not_connected).
  bool relay_in(std::span<const RelayHop> hops, std::span<RelayFrame> frames, bool hold);
  void give_relay_buffers(Session& s);
  void reclaim_relayed(Session& s);
  void return_relayed(Session& s, std::uint16_t until);
  void release_relay_buffers(Session& s);

  std::shared_ptr<Interface> ifp_;
  const Config config_;
  FramePool& pool_;
  os::UniqueFd listener_;
  os::UniqueFd epoll_;
  os::UniqueFd wake_;
  os::UniqueFd retry_;
  os::UniqueFd handshake_timer_;
  const std::chrono::milliseconds handshake_timeout_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> connected_{false};
  // flow-control: the last read left frames on a ring (the run thread's).
  bool held_back_ = false;
  std::shared_ptr<RelayPool> relay_pool_;  // zero-copy
  unsigned relay_direction_ = 0;           // of the frames this end receives
  std::atomic<bool> relay_ready_{false};

  // The session: replaced by the control thread under tx_mutex_; read
  // there without it, and by input() under it.
  std::mutex tx_mutex_;
  std::unique_ptr<Session> session_;
  std::string tx_problem_;  // set by input() for the control thread

  mutable std::mutex names_mutex_;
  std::string peer_name_;
  std::string last_disconnect_;

  LiveCounters<Counters, kCounterFields> counters_;
};

}  // namespace epair::memif
