// The epair engine: the cloner, the vnets, and the workers that carry frames.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "epair/counter_block.hpp"
#include "epair/frame.hpp"
#include "epair/interface.hpp"
#include "epair/mac.hpp"
#include "epair/status.hpp"

namespace epair {

class Dispatcher;
class ImpairmentClock;
struct Pair;

/// The vnet every engine starts with, where interfaces are created unless a
/// call names another (FreeBSD's vnet0, Linux's initial namespace).
inline constexpr std::string_view kHostVnet = "host";
/// The highest unit the cloner gives out (FreeBSD's epair maxunit).
inline constexpr int kMaxUnit = 32767;
/// Interface names hold at most 15 characters (IFNAMSIZ 16 with the NUL).
inline constexpr std::size_t kMaxInterfaceName = 15;

struct EngineConfig {
  /// Worker threads; 0 means one per CPU.
  std::uint32_t workers = 0;
  /// Receive queues per side; a flow hash spreads frames over them.
  std::uint32_t queues_per_side = 1;
  /// Frames each receive queue holds before it tail-drops (FreeBSD: 4096).
  std::uint32_t queue_depth = 4096;
  /// Frames a worker takes from a queue at once and hands to the endpoint.
  std::uint32_t burst = 32;
  /// Bursts a worker takes from one queue before it lets others run.
  std::uint32_t bursts_per_run = 8;
  /// How long an idle worker polls before it sleeps, in microseconds.
  std::uint32_t worker_spin_us = 50;
  /// Bind worker i to CPU i (mod the CPU count).
  bool pin_workers = false;
  /// FreeBSD keeps an epair's link up from create to destroy. With this set
  /// an end has carrier (link up, LOWER_UP) only while its peer is RUNNING
  /// and UP, as Linux veth does; TAP ends use it to show NO-CARRIER.
  bool carrier_follows_peer = false;
  /// A thread that is not a worker and finds the peer's queue idle delivers
  /// the frames itself, to the end of the queue or of its run budget, instead
  /// of waking a worker: one thread wakeup less per frame at low rates (run
  /// to completion, as veth does). Busy queues stay with the workers, and
  /// transmit() then returns after the peer's endpoint has taken the frames.
  bool deliver_inline = false;
  MacMode mac_mode = MacMode::kLegacy;
  /// Where the legacy scheme's monotonic index starts: a program that keeps
  /// pairs across restarts passes mac_index() of the last run, so that new
  /// pairs never repeat the address of an existing one.
  std::uint32_t mac_index_start = 0;
  /// The host id hashed into addresses; default /etc/machine-id. A zero id
  /// is replaced by a random one, as FreeBSD does.
  std::optional<std::uint64_t> host_id;
  /// The pool behind pool().
  FramePoolConfig pool;
};

/// The unit a cloner name asks for, as create() reads it (FreeBSD's
/// ifc_name2unit()): N for "epair<N>", -1 for "epair" (the lowest free).
/// EINVAL, with create()'s message, for any other name, a leading zero or
/// a number past an int; a unit above kMaxUnit is create()'s to refuse.
Result<int> cloner_unit(std::string_view name);

/// One engine is one world of epairs: a cloner per vnet, the vnets, a frame
/// pool and the workers. Every member may be called from any thread, also
/// from inside Endpoint::input() and observers.
class Engine {
 public:
  /// Throws std::invalid_argument for a configuration that cannot work
  /// (zero queue depth, burst or queues), std::system_error when threads
  /// cannot be started.
  explicit Engine(const EngineConfig& config = {});
  /// Destroys every pair (see destroy()) and vnet, then stops the workers.
  /// Interface handles still held afterwards fail every operation.
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  const EngineConfig& config() const { return config_; }
  /// Worker threads running (config().workers, or one per CPU when 0).
  std::uint32_t worker_count() const;
  std::uint64_t host_id() const { return host_id_; }
  /// The legacy scheme's index so far (see EngineConfig::mac_index_start).
  std::uint32_t mac_index() const;
  /// The engine's frame pool.
  FramePool& pool() { return *pool_; }
  std::shared_ptr<FramePool> shared_pool() const { return pool_; }

  // --- the cloner (SPEC.md "Cloning and names") ---

  /// The cloners this engine has: {"epair"} (ifconfig -C).
  std::vector<std::string> cloners() const { return {"epair"}; }
  /// Creates a pair in vnet from "epair" (lowest free unit) or "epair<N>",
  /// and returns the name of side a. params are cloner parameters: epair
  /// takes none and never reads them. Errors: EINVAL for a name the cloner
  /// does not match, ENOSPC when the unit is above kMaxUnit or the name
  /// leaves no room for the suffix, EEXIST when the unit or an end's name
  /// is taken, ENOENT for an unknown vnet, EBUSY for one shutting down.
  Result<std::string> create(std::string_view name, std::string_view vnet = kHostVnet, const void* params = nullptr);
  /// create() whose ends keep their counters in the blocks given, which
  /// the pair holds until it is freed; counts already in a block go on
  /// (epair/counter_block.hpp). A program that keeps pairs across restarts
  /// gives blocks in memory that outlives it. No frame may be counted in
  /// a block by two pairs at once: one block, one end.
  Result<std::string> create(std::string_view name, const PairCounters& counters, std::string_view vnet = kHostVnet);
  /// Destroys the pair that ifname (either end) belongs to, found in vnet.
  /// In order: both sides go link down and not RUNNING, both are detached
  /// from their vnets, the call waits until no worker is delivering for them
  /// (not when called on a worker thread, where it cannot wait: the worker
  /// that runs a queue next frees it instead), every queued frame is freed,
  /// and the unit is freed. ENXIO when there is no such interface.
  Status destroy(std::string_view ifname, std::string_view vnet = kHostVnet);

  /// ifconfig IFNAME name NEWNAME: ifname in vnet is called new_name from
  /// now on; its pair, unit, counters and everything attached to it stay,
  /// and the old name is free. EINVAL for a name empty, "." or "..", with
  /// '/', ':', blanks or control characters, ENAMETOOLONG for one longer
  /// than kMaxInterfaceName, EEXIST ("interface NEWNAME already exists")
  /// when vnet has an interface of that name, ENXIO when ifname is not in
  /// vnet, ENOENT for an unknown vnet. Observers hear kRenamed.
  Status rename(std::string_view ifname, std::string_view new_name, std::string_view vnet = kHostVnet);

  /// The interface called ifname in vnet, or null.
  std::shared_ptr<Interface> find(std::string_view ifname, std::string_view vnet = kHostVnet) const;
  /// The interfaces in vnet, by index; empty for an unknown vnet.
  std::vector<std::shared_ptr<Interface>> interfaces(std::string_view vnet = kHostVnet) const;

  // --- vnets (SPEC.md "Moving between network stacks") ---

  /// EINVAL for an empty name or one with '/' or control characters, EEXIST
  /// when it exists.
  Status create_vnet(std::string_view name);
  /// Shuts vnet down: interfaces it borrowed go back to their home vnet
  /// (arriving not UP), pairs created in it are destroyed, and so is a pair
  /// whose end cannot go home because the name is taken there. Moves into a
  /// vnet that is shutting down fail with EBUSY meanwhile. ENOENT when
  /// unknown, EINVAL for the host vnet, EBUSY when already shutting down.
  Status destroy_vnet(std::string_view name);
  std::vector<std::string> vnets() const;

  /// ifconfig IFNAME vnet TARGET: moves ifname from vnet `from` to target.
  /// The interface arrives not UP, with a new index. EEXIST when target is
  /// where it already is or has an interface of that name, ENOENT for an
  /// unknown vnet, EBUSY when target is shutting down, ENXIO when ifname is
  /// not in `from`.
  Status move(std::string_view ifname, std::string_view target, std::string_view from = kHostVnet);
  /// ifconfig -vnet FROM IFNAME: brings ifname back from vnet `from` into
  /// vnet `into`. The same rules as move().
  Status reclaim(std::string_view ifname, std::string_view from, std::string_view into = kHostVnet);

 private:
  struct Vnet;
  struct PairRecord;
  using Events = std::vector<std::pair<std::shared_ptr<Interface>, InterfaceEvent>>;

  std::shared_ptr<Vnet> vnet_locked(std::string_view name) const;
  Status move_locked(std::string_view ifname, Vnet& from, std::string_view target_name, Events& events);
  void attach_locked(Interface& ifp, Vnet& vnet);
  MacAddress mac_for_locked(const Interface& a);
  std::shared_ptr<Pair> begin_teardown_locked(Pair& pair, Events& events);
  void finish_teardown(const std::shared_ptr<Pair>& pair, Events& events);
  static void deliver(Events& events);

  const EngineConfig config_;
  std::uint64_t host_id_;
  std::shared_ptr<FramePool> pool_;
  std::shared_ptr<Dispatcher> dispatcher_;
  std::shared_ptr<ImpairmentClock> clock_;

  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<Vnet>, std::less<>> vnets_;
  std::map<Pair*, std::shared_ptr<PairRecord>> pairs_;
  // Pairs between teardown steps 2 and 5, and the vnet that holds the unit.
  std::map<Pair*, std::shared_ptr<Vnet>> units_to_free_;
  std::uint32_t next_mac_index_ = 0;
};

}  // namespace epair
