// The kernel data path's programs and maps (datapath.bpf.c): loaded once by
// the first epaird, adopted by the next one from the hidden devices the
// first left behind.
//
// Guarantees:
// - What an end transmits flows without epaird: the hidden devices hold
//   the programs (attached by tcx, or as tc filters on kernels before 6.6),
//   and the programs their maps, while no epaird runs.
// - Adopting takes over the running programs and maps themselves, so the
//   counters go on from where they were and nothing is counted twice: the
//   kernel's, and the engine's, which it keeps in a map of the programs'
//   (engine_counters()).
// - A kernel that cannot run the data path is found by load(): it loads the
//   programs and attaches one to a device of the hidden namespace, or says
//   what it could not do.
// - Not thread-safe: the daemon's control thread makes every call.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "datapath_abi.h"
#include "epair/counter_block.hpp"
#include "epair/mac.hpp"
#include "epair/status.hpp"
#include "unique_fd.hpp"

namespace epair::kernel {

/// An end's devices in the hidden namespace, by ifindex there: the veth
/// whose peer is the end, and the TAP that leads to and from the engine.
struct HiddenEnd {
  int veth = 0;
  int tap = 0;
};

/// The counters of one end as the kernel path keeps them, summed over the
/// CPUs.
using Counters = epair_end_counters;

/// Adds what the kernel path counted to into: another CPU's share, or the
/// engine's InterfaceCounters, whose fields have the same names.
template <typename Into>
void add_counters(Into& into, const Counters& more) {
  into.opackets += more.opackets;
  into.obytes += more.obytes;
  into.omcasts += more.omcasts;
  into.oerrors += more.oerrors;
  into.ipackets += more.ipackets;
  into.ibytes += more.ibytes;
  into.imcasts += more.imcasts;
  into.ierrors += more.ierrors;
}

/// The slots of a pair's ends in the counters.
struct PairSlots {
  std::uint32_t a = 0;
  std::uint32_t b = 0;
};

/// What the maps hold, as the kernel says: an entry in each for every end
/// on the kernel path.
struct MapEntries {
  std::size_t ends = 0;         ///< by hidden veth: what the end sends
  std::size_t from_engine = 0;  ///< by hidden TAP: what the engine delivers
};

/// A program epaird attached to a hidden device, and what holds it.
struct AttachedProgram {
  std::uint32_t id = 0;
  bool tcx = false;  ///< by tcx, not as the filter of tc's clsact
};

/// The program epaird attached to ifindex, asked in the namespace of
/// netns_fd: by tcx, else as the filter of tc's clsact.
Result<AttachedProgram> attached_program(int netns_fd, int ifindex);

class Datapath {
 public:
  ~Datapath();
  Datapath(const Datapath&) = delete;
  Datapath& operator=(const Datapath&) = delete;

  /// Loads the programs and maps into the kernel and proves that a tc
  /// filter can hold them in the namespace of netns_fd.
  static Result<std::unique_ptr<Datapath>> load(int netns_fd);
  /// The programs and maps a previous epaird attached to end's devices.
  static Result<std::unique_ptr<Datapath>> adopt(int netns_fd, const HiddenEnd& end);

  /// Two free slots in the counters, the kernel's and the engine's at zero
  /// in both; ENOSPC when there are not two. add_pair() takes them into
  /// use; release_slots() gives back slots a pair did not take.
  Result<PairSlots> take_slots();
  void release_slots(const PairSlots& slots);
  /// The indexes at which the hidden devices of the end at slot must be
  /// made (datapath_abi.h), or {0, 0}, any, for programs adopted from an
  /// epaird before those.
  HiddenEnd indexes_of(std::uint32_t slot) const;
  /// Where the engine counts for the end at slot (Engine::create): memory
  /// of the programs', mapped, which outlives epaird. Null when the
  /// programs have none (adopted from an epaird before it).
  std::shared_ptr<CounterBlock> engine_counters(std::uint32_t slot) const;
  /// Describes both ends in the maps, each at its slot, and attaches the
  /// programs to their devices: frames go the kernel's way, those longer
  /// than an end's MTU + 18 are dropped, and each end's peer counts as
  /// down until set_peer_up() says otherwise.
  Status add_pair(const HiddenEnd& a, const HiddenEnd& b, std::uint32_t mtu, const PairSlots& slots);
  /// Forgets the end's map entries and frees its slot; the filters go with
  /// its devices.
  void remove_end(const HiddenEnd& end);
  Status set_peer_up(const HiddenEnd& end, bool up);
  /// Frames longer than mtu + 18 (Ethernet and a VLAN header) the end
  /// sends are dropped and counted in its oerrors (SPEC.md, transmit step
  /// 1), those its peer sends in its ierrors. Fails changing nothing when
  /// either end is not in the maps.
  Status set_mtu(const HiddenEnd& end, std::uint32_t mtu);
  Status set_way(const HiddenEnd& end, epair_way way);
  /// The end's Ethernet address, as the programs compare a frame's
  /// destination with it: a frame for it takes the short way into the end
  /// (bpf_redirect_peer), any other the way through its veth, where Linux
  /// classifies it (another host's, broadcast, multicast). Until told,
  /// the programs take it for 00:00:00:00:00:00, which no end has. Fails
  /// changing nothing when the end, its peer or its TAP is not in the maps.
  Status set_mac(const HiddenEnd& end, const MacAddress& mac);
  /// What the program says of the end: its peer's veth and its settings.
  Result<epair_end_config> config(const HiddenEnd& end) const;
  Counters counters(const HiddenEnd& end) const;
  /// Read key by key from the kernel, not from what epaird believes.
  MapEntries map_entries() const;
  /// "tcx" or "tc": what holds the programs on the hidden devices.
  const char* hook() const { return tcx_ ? "tcx" : "tc"; }

 private:
  explicit Datapath(int netns_fd) : netns_fd_(netns_fd) {}
  Status attach(int ifindex, int program_fd) const;
  Status update_end(int veth, const epair_end_config& config);
  // Whether an entry read from ends holds an end.
  static bool holds_end(const epair_end_config& config) { return config.peer_veth != 0; }
  // Calls visit with each entry of ends that holds an end; false when the
  // map could not be read (errno).
  template <typename Visit>
  bool for_each_end(Visit visit) const;
  // The slots the ends in the map hold, read when adopting.
  Status mark_used_slots();
  std::optional<std::uint32_t> take_slot();
  // Maps engine_counters_ into engine_blocks_.
  Status map_engine_counters();

  int netns_fd_;
  // Programs attached by tcx, not as tc filters.
  bool tcx_ = false;
  // ends is an array indexed by the hidden veth's ifindex (an empty entry
  // is there, its peer_veth 0), not a hash.
  bool ends_array_ = true;
  os::UniqueFd transmit_;
  os::UniqueFd deliver_;
  os::UniqueFd ends_;
  os::UniqueFd from_engine_;
  os::UniqueFd counters_;
  os::UniqueFd engine_counters_;
  // engine_counters_ mapped; what engine_counters() hands out keeps it so.
  std::shared_ptr<epair_engine_counters> engine_blocks_;
  std::vector<bool> slot_used_ = std::vector<bool>(EPAIR_KERNEL_MAX_ENDS);
};

}  // namespace epair::kernel
