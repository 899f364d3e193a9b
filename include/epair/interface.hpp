// One end of an epair: the ifnet of FreeBSD, with the transmit path.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "epair/counter_block.hpp"
#include "epair/frame.hpp"
#include "epair/impairment.hpp"
#include "epair/mac.hpp"
#include "epair/status.hpp"

namespace epair {

class Engine;
class ImpairmentLine;
class Interface;
class ReceiveQueue;
struct Pair;

/// Interface flags, FreeBSD's values (ifconfig prints them in hex).
enum InterfaceFlag : std::uint32_t {
  kFlagUp = 0x1,
  kFlagBroadcast = 0x2,
  kFlagDebug = 0x4,
  kFlagKnowsEpoch = 0x20,  ///< FreeBSD IFF_KNOWSEPOCH: set, never printed by name
  kFlagRunning = 0x40,     ///< driver-owned (IFF_DRV_RUNNING): cannot be set by users
  kFlagNoArp = 0x80,
  kFlagPromisc = 0x100,
  kFlagAllMulti = 0x200,
  kFlagSimplex = 0x800,
  kFlagLink0 = 0x1000,
  kFlagLink1 = 0x2000,
  kFlagLink2 = 0x4000,
  kFlagMulticast = 0x8000,
  kFlagLowerUp = 0x10000,  ///< Linux IFF_LOWER_UP: carrier; mirrors link_state()
};

/// Flags a user may change with set_flags(); the rest belong to the driver.
inline constexpr std::uint32_t kUserFlags =
    kFlagUp | kFlagDebug | kFlagNoArp | kFlagPromisc | kFlagAllMulti | kFlagLink0 | kFlagLink1 | kFlagLink2;

/// Capabilities, FreeBSD's IFCAP_ values.
enum Capability : std::uint32_t {
  kCapRxCsum = 0x1,
  kCapTxCsum = 0x2,
  kCapVlanMtu = 0x8,
  kCapVlanHwTagging = 0x10,
  kCapRxCsumIpv6 = 0x200000,
  kCapTxCsumIpv6 = 0x400000,
};
inline constexpr std::uint32_t kSupportedCapabilities =
    kCapRxCsum | kCapTxCsum | kCapVlanMtu | kCapVlanHwTagging | kCapRxCsumIpv6 | kCapTxCsumIpv6;
/// A new end's, as FreeBSD 15's epair: checksum offload both ways for
/// IPv4 and IPv6, VLAN_MTU, VLAN_HWTAGGING (a VLAN tag crosses as
/// metadata).
inline constexpr std::uint32_t kDefaultCapabilities =
    kCapRxCsum | kCapTxCsum | kCapVlanMtu | kCapVlanHwTagging | kCapRxCsumIpv6 | kCapTxCsumIpv6;
/// The pair's, not one end's: changed on either end, changed on both.
inline constexpr std::uint32_t kPairCapabilities = kCapTxCsum | kCapTxCsumIpv6;
/// Always on: a frame may arrive with its checksum vouched for by the
/// sender, which only an end that offloads receive checksums may take.
inline constexpr std::uint32_t kFixedCapabilities = kCapRxCsum | kCapRxCsumIpv6;

enum class LinkState { kUnknown, kDown, kUp };

/// The counters of ifnet (if_data), all monotonic.
struct InterfaceCounters {
  std::uint64_t ipackets = 0;
  std::uint64_t ierrors = 0;
  std::uint64_t opackets = 0;
  std::uint64_t oerrors = 0;
  std::uint64_t ibytes = 0;
  std::uint64_t obytes = 0;
  std::uint64_t imcasts = 0;
  std::uint64_t omcasts = 0;
  std::uint64_t iqdrops = 0;
  std::uint64_t oqdrops = 0;
};

/// What changed, for observers.
enum class InterfaceEvent {
  kFlags,      ///< flags() changed (UP/DOWN, RUNNING, PROMISC, ...)
  kLinkState,  ///< link_state() changed
  kMtu,
  kAddress,  ///< the Ethernet address changed
  kDescription,
  kCapabilities,
  kMulticast,   ///< a multicast group was joined for the first time or left for good
  kMoved,       ///< now in another vnet (vnet_name())
  kRenamed,     ///< called another name now (name())
  kImpairment,  ///< impairment() was set, changed or cleared
  kTaps,        ///< a capture tap was added or removed (tapped())
  kDestroyed,   ///< the pair is gone; the last event
};

/// The network stack behind an interface. The core hands it the frames the
/// interface receives; it hands the core frames to transmit with
/// Interface::transmit(). Endpoints own their own threads and descriptors.
class Endpoint {
 public:
  virtual ~Endpoint() = default;
  /// Called on a worker thread with a burst of frames received on ifp, in
  /// order. The endpoint owns the frames from now on: it frees them or
  /// transmits them. Must not block for long: other queues of the same worker
  /// wait meanwhile. May call any Interface or Engine function, including
  /// destroying ifp.
  virtual void input(Interface& ifp, std::span<Frame* const> burst) noexcept = 0;

  static constexpr std::size_t kNoLimit = SIZE_MAX;
  /// How many frames input() could pass on now without dropping one for
  /// want of room, for a reader on the other end that holds frames back
  /// rather than have them dropped here (Interface::peer_room()). Called on
  /// that reader's thread, concurrently with input(): a snapshot, which may
  /// only grow until input() runs. kNoLimit when the endpoint never drops
  /// for want of room, or when holding frames back would gain nothing.
  virtual std::size_t room() noexcept { return kNoLimit; }
};

/// Keeps a subscription alive; unsubscribes when destroyed.
class Subscription {
 public:
  Subscription() = default;
  explicit Subscription(std::function<void()> cancel) : cancel_(std::move(cancel)) {}
  Subscription(Subscription&& other) noexcept : cancel_(std::exchange(other.cancel_, nullptr)) {}
  Subscription& operator=(Subscription&& other) noexcept;
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;
  ~Subscription() { reset(); }
  void reset();

 private:
  std::function<void()> cancel_;
};

/// Direction of a frame shown to a capture tap.
enum class TapDirection { kOut, kIn };

/// One end of an epair. Obtained from Engine::find(); a shared_ptr keeps the
/// whole pair's memory alive, even after it is destroyed (then every
/// operation fails with ENXIO or is a no-op).
///
/// Thread safety: every member may be called from any thread. The control
/// setters serialise on the engine; transmit() never blocks and never
/// allocates.
class Interface {
 public:
  ~Interface();
  Interface(const Interface&) = delete;
  Interface& operator=(const Interface&) = delete;

  // --- identity ---
  /// The name now: Engine::rename() changes it (ifconfig name).
  std::string name() const;
  static constexpr std::string_view driver_name() { return "epair"; }
  int unit() const { return unit_; }
  /// 'a' or 'b'.
  char side() const { return side_; }
  /// The interface index in its current vnet; changes when moved.
  std::uint32_t index() const;
  /// Name of the vnet the interface is in now, and the one it was created in.
  std::string vnet_name() const;
  std::string home_vnet_name() const;
  /// The other end; null once the pair is destroyed.
  std::shared_ptr<Interface> peer() const;
  /// Interface groups (ifconfig group), in the order joined: the
  /// cloner's, "epair", from creation.
  std::vector<std::string> groups() const;
  /// ifconfig group: EINVAL for a name empty, longer than 15 bytes or
  /// ending in a digit (FreeBSD's rules), EEXIST when already a member.
  Status add_group(std::string group);
  /// ifconfig -group: ENOENT when not a member.
  Status remove_group(std::string_view group);

  // --- state ---
  std::uint32_t flags() const;
  bool is_up() const { return (flags() & kFlagUp) != 0; }
  bool is_running() const { return (flags() & kFlagRunning) != 0; }
  /// Sets the user flags (kUserFlags) to exactly those in flags; driver
  /// flags are ignored. ENXIO once destroyed.
  Status set_flags(std::uint32_t flags);
  Status set_up(bool up);
  LinkState link_state() const;

  std::uint32_t mtu() const;
  /// FreeBSD accepts 72..65535 (EINVAL otherwise). Changes this side only.
  Status set_mtu(std::uint32_t mtu);
  static constexpr std::uint32_t kMinMtu = 72;
  static constexpr std::uint32_t kMaxMtu = 65535;
  static constexpr std::uint32_t kDefaultMtu = 1500;
  /// Ethernet header plus one VLAN tag: the slack over the MTU that transmit
  /// accepts.
  static constexpr std::uint32_t kFrameOverhead = 18;

  MacAddress mac() const;
  /// Rejects multicast and all-zero addresses (EINVAL).
  Status set_mac(const MacAddress& mac);

  /// Joins a link-layer multicast group (SIOCADDMULTI). Joining again counts
  /// another member, as if_addmulti() does. epair filters nothing, like
  /// FreeBSD's: every frame reaches the endpoint whatever the memberships;
  /// they are kept for the stack and tools. EINVAL for an address that is
  /// not multicast, ENXIO once destroyed.
  Status add_multicast(const MacAddress& group);
  /// Leaves a group once (SIOCDELMULTI); ENOENT when it was not joined.
  Status delete_multicast(const MacAddress& group);
  /// The groups joined, each once, in the order first joined.
  std::vector<MacAddress> multicast_groups() const;

  std::uint32_t capabilities() const { return kSupportedCapabilities; }
  std::uint32_t enabled_capabilities() const;
  /// Enables the given capabilities, as FreeBSD 15's epair does: EINVAL
  /// for unsupported bits; kFixedCapabilities stay on whatever caps says;
  /// kPairCapabilities change on the peer too.
  Status set_enabled_capabilities(std::uint32_t caps);

  std::string description() const;
  Status set_description(std::string text);

  /// Baudrate in bit/s: 10 Gbit/s.
  static constexpr std::uint64_t baudrate() { return 10'000'000'000ULL; }
  /// ifconfig's media words.
  static constexpr std::string_view media() { return "Ethernet 10Gbase-T (10Gbase-T <full-duplex>)"; }
  /// "active" while the link is up, else "no carrier".
  std::string_view media_status() const;

  InterfaceCounters counters() const;
  /// Number of receive queues of this side.
  std::size_t queue_count() const { return queues_.size(); }
  /// Frames waiting in this side's receive queues now, and their room.
  std::size_t queued_frames() const;
  std::size_t queue_capacity() const;

  // --- data path ---
  /// Transmits one frame to the peer, taking ownership whatever the result.
  /// Follows SPEC.md step by step: E2BIG when longer than mtu() + 18, ENXIO
  /// when not RUNNING, ENETDOWN when not UP (each counted in oerrors); a peer
  /// that is down, or a full receive queue, drops the frame, counts it, and
  /// still returns success.
  std::error_code transmit(Frame* frame);
  /// Counts frames the attached stack refused on input in ierrors, as
  /// FreeBSD's ether_input() does for an oversize frame.
  void count_input_errors(std::uint64_t n) { add_to(counters_->rx.ierrors, n); }
  /// Counts frames the attached stack had for transmit() but could not hand
  /// over (the frame pool was empty) in oqdrops, where a full queue's drops
  /// go too.
  void count_output_drops(std::uint64_t n) { add_to(counters_->tx.oqdrops, n); }
  /// transmit() for a burst, in order; returns how many frames got success.
  std::size_t transmit_burst(std::span<Frame* const> frames);

  /// Counts frames an endpoint refused as transmit() would (too short, or
  /// longer than mtu() + kFrameOverhead) in oerrors: one that hands frames
  /// over itself (epair/cut_through.hpp).
  void count_output_errors(std::uint64_t n) { add_to(counters_->tx.oerrors, n); }

  // --- shaping and impairment (epair/impairment.hpp) ---
  /// Shapes and impairs what this end transmits from now on. Setting it
  /// again changes the settings for the frames to come; frames already held
  /// keep their times. Without a seed the decisions are seeded at random.
  /// ENXIO once destroyed, EINVAL for a limit of 0 or over
  /// kMaxImpairmentLimit.
  Status set_impairment(const ImpairmentConfig& config);
  /// Removes it; frames it held are dropped (as tc qdisc del drops them).
  void clear_impairment();
  /// The settings in force, if any.
  std::optional<ImpairmentConfig> impairment() const;
  /// What it did since set (zero when none is set).
  ImpairmentCounters impairment_counters() const;

  // --- endpoint, observers, taps ---
  /// Attaches the stack that receives this side's frames, replacing any
  /// other. Frames received while none is attached are freed and counted in
  /// iqdrops.
  void attach(std::shared_ptr<Endpoint> endpoint);
  /// Detaches the endpoint; returns once no worker is delivering to it
  /// (except when called inside Endpoint::input(), where waiting for other
  /// workers could deadlock: a burst already being handed over completes).
  void detach();
  /// Whether the stack behind the endpoint is there (a memif peer
  /// connected, say): while it is not, this end shows no carrier, and
  /// neither does its peer when the pair's carrier follows the peer.
  /// Notifies kLinkState on each end whose carrier changed.
  void set_endpoint_link(bool up);
  /// What the other end's endpoint can take now (Endpoint::room()) less
  /// the frames waiting in that end's receive queues: how many frames this
  /// end may transmit without any being dropped for want of room beyond
  /// the cable, as a reader of a ring the sender fills can use to hold the
  /// rest back (802.3x PAUSE, in effect). Endpoint::kNoLimit when that end
  /// has no endpoint, an endpoint without a limit, or the pair is gone.
  std::size_t peer_room() const;

  using Observer = std::function<void(Interface&, InterfaceEvent)>;
  /// Calls observer after each change, on the thread that made the change,
  /// outside every lock of the engine.
  Subscription subscribe(Observer observer);

  using Tap = std::function<void(const Interface&, std::span<Frame* const>, TapDirection)>;
  /// Shows every frame to tap, a burst at a time: outgoing ones at step 3 of
  /// the transmit path (before the peer checks), incoming ones before the
  /// endpoint sees them. Runs on the transmitting thread or the worker; must
  /// not keep or change the frames.
  /// The data path reads the list of taps without a lock: a thread that
  /// took the list just before the Subscription was reset may still call
  /// tap once after, so what tap uses must be owned by it (a shared_ptr
  /// captured by value), not borrowed.
  Subscription add_tap(Tap tap);
  /// Whether a capture tap is attached.
  bool tapped() const { return tap_count_.load(std::memory_order_relaxed) != 0; }

 private:
  friend class Engine;
  friend class Dispatcher;
  friend struct Pair;
  friend class ReceiveQueue;
  friend class ImpairmentLine;
  friend class CutThrough;

  // CutThrough's work (epair/cut_through.hpp), here where the queues and
  // counters are.
  bool cut_through_open() const;
  void count_cut_through(std::uint64_t frames, std::uint64_t bytes);
  void count_cut_through_mcasts(std::uint64_t frames);

  struct ObserverEntry {
    std::uint64_t id;
    std::shared_ptr<Observer> observer;
  };
  struct TapEntry {
    std::uint64_t id;
    std::shared_ptr<const Tap> tap;
  };
  using TapList = std::vector<std::shared_ptr<const Tap>>;

  Interface(Pair& pair, char side, std::string name, int unit, std::size_t queues, std::uint32_t queue_depth,
            std::shared_ptr<CounterBlock> counters);

  void notify(InterfaceEvent event);
  // The taps to show frames to, or null; one atomic load, no lock.
  std::shared_ptr<const TapList> current_taps() const;
  void show_to_taps(const TapList& taps, std::span<Frame* const> frames, TapDirection direction) const;
  void publish_taps_locked();
  void input_burst(std::span<Frame* const> burst, Endpoint* endpoint);
  void scrub_for_peer(Frame& frame, Interface& peer) const;
  ReceiveQueue& queue_for(const Frame& frame);
  bool enqueue_on_peer(Interface& peer, Frame* frame);
  // Steps 4-7 for frames that passed steps 1-3.
  void cross_to_peer(std::span<Frame* const> frames);
  std::shared_ptr<ImpairmentLine> current_line() const;
  void publish_line(std::shared_ptr<ImpairmentLine> line);
  std::error_code check_transmit(std::uint32_t frame_size, std::uint32_t flags) const;
  std::shared_ptr<Endpoint> endpoint() const;
  void set_driver_state(bool running);
  bool update_carrier();

  Pair& pair_;
  Interface* peer_ = nullptr;
  const char side_;
  // Guarded by name_mutex_ alone, so that a message can name the
  // interface whatever other lock its writer holds.
  mutable std::mutex name_mutex_;
  std::string name_;
  const int unit_;

  // Read on every transmit; written on the control path.
  alignas(kCacheLine) std::atomic<std::uint32_t> flags_;
  std::atomic<std::uint32_t> mtu_{kDefaultMtu};
  std::atomic<std::uint32_t> capenable_{kDefaultCapabilities};
  std::atomic<std::size_t> tap_count_{0};
  std::atomic<bool> impaired_{false};
  std::atomic<bool> endpoint_link_{true};

  // Never null: the block given at creation, or one of the interface's own.
  const std::shared_ptr<CounterBlock> counters_;

  std::vector<std::unique_ptr<ReceiveQueue>> queues_;

  // Control-path state, guarded by mutex_.
  mutable std::mutex mutex_;
  MacAddress mac_;
  std::string description_;
  std::vector<std::string> groups_{"epair"};
  std::vector<std::pair<MacAddress, std::uint32_t>> multicast_;  // group, members
  LinkState link_state_ = LinkState::kDown;
  std::uint32_t index_ = 0;
  std::string vnet_name_;
  std::string home_vnet_name_;
  std::shared_ptr<Endpoint> endpoint_;
  std::vector<ObserverEntry> observers_;
  std::vector<TapEntry> taps_;
  // What the data path reads of taps_: replaced whole on every change, so a
  // transmitter takes a reference to a consistent list without mutex_. The
  // spin lock covers only the copy or the swap of the pointer (libstdc++'s
  // std::atomic<std::shared_ptr> does the same, hidden from TSan).
  mutable std::atomic_flag tap_list_lock_;
  std::shared_ptr<const TapList> tap_list_;
  // The impairment, read by the data path as tap_list_ is.
  mutable std::atomic_flag line_lock_;
  std::shared_ptr<ImpairmentLine> line_;
  std::uint64_t next_subscription_id_ = 1;
};

/// "flags=8863<UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST>" without the
/// "flags=" word: the hex value and the names ifconfig prints.
std::string format_flags(std::uint32_t flags);
/// "options=8<VLAN_MTU>" without the "options=" word.
std::string format_capabilities(std::uint32_t caps);
/// The ifconfig block of SPEC.md for ifp. extra_lines (already indented with
/// a tab, e.g. "\tinet 10.0.0.1 netmask 0xffffff00 ...") go after "ether".
std::string format_ifconfig(const Interface& ifp, std::span<const std::string> extra_lines = {});
/// Counters in netstat's words, two lines, each starting with a tab.
std::string format_counters(const InterfaceCounters& counters);

}  // namespace epair
