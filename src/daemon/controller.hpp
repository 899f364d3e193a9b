// epaird's model: the engine, an End for each interface (its TAP device
// and attachment), the network namespaces the ends live in, and the state
// file that survives restarts. The Controller's work is spread over files
// by job:
//   controller.cpp     pairs and ends: create, configure, move, destroy
//   attach.cpp         attachments (VXLAN, memif), carrier, offloads
//   kernel_events.cpp  following what `ip` and the kernel change
//   state.cpp          what the state file holds, and re-adoption from it
// with netns_registry, state_file, views and metrics beside them.
// Every call is made from the daemon's control thread, except
// report_device_gone(), which reader threads call. What other threads
// change in an end (a memif peer's carrier, a capture ending) reaches a
// kernel end's hidden devices through the control thread too.
#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "boot_config.hpp"
#include "control_protocol.hpp"
#include "counter_file.hpp"
#include "end.hpp"
#include "epair/capture.hpp"
#include "epair/engine.hpp"
#include "metrics.hpp"
#include "netns_registry.hpp"
#include "state_file.hpp"

namespace epair::daemon {

/// A capture attached to its ends, for a CaptureSession to stream.
struct StartedCapture {
  std::unique_ptr<Capture> capture;
  std::vector<std::shared_ptr<Interface>> ifps;
  std::uint64_t count = 0;  ///< frames to deliver; 0 for no limit
};

/// Which data path new pairs take (epaird(8), DATA PATHS).
enum class DatapathChoice {
  kAuto,    ///< kernel where the kernel and privileges allow it, else tap
  kKernel,  ///< kernel, or epaird does not start
  kTap,
};

struct ControllerConfig {
  EngineConfig engine;
  std::filesystem::path state_file;
  DatapathChoice datapath = DatapathChoice::kAuto;
  /// Where the hidden namespace of the kernel data path is mounted.
  std::filesystem::path hidden_netns;
  /// Zero: a reader thread per TAP end. Otherwise one tap::Poller reads all
  /// ends and spins this long after the last frame before it sleeps.
  std::chrono::microseconds busy_poll{0};
  /// Where the engine's counters of TAP-path ends outlive epaird
  /// (CounterFile); empty: in memory, from zero at each start.
  std::filesystem::path counter_file;
};

/// The name an end's hidden devices are named after, as the state file
/// keeps it.
std::string hidden_name_in_state(const json& end);
/// The side ("a" or "b") of an end of the state file; "?" when it has none.
std::string side_in_state(const json& end);

class Controller {
 public:
  ~Controller();
  Controller(const Controller&) = delete;
  Controller& operator=(const Controller&) = delete;

  /// Reads the state file (throws std::runtime_error when it is unreadable)
  /// and starts the engine where the last run left its MAC index.
  explicit Controller(ControllerConfig config);
  /// Opens the kernel data path when the configuration asks for it, or the
  /// state file has pairs on it; until then new pairs take the TAP path.
  /// An error only when --datapath kernel cannot be had; with auto, the
  /// reason is logged and new pairs take the TAP path.
  Status open_datapath();
  /// Re-adopts the pairs of the state file; pairs whose devices or
  /// namespaces are gone are torn down and reported.
  void restore();

  /// Makes sure the state file can be rewritten before a change: the
  /// space the next save needs is written and synced now. ENOSPC, EROFS or
  /// another errno with a one-line message when it cannot; then the change
  /// must be refused, and the state (in Linux, the engine and the file) is
  /// left as it was.
  Status reserve_state();

  Result<std::string> create(std::string_view name);
  /// Applies the actions to the end called name, in order; final_name, if
  /// given, is what it is called after them (a `name` action renames it).
  Status configure(std::string_view name, const std::vector<control::Action>& actions,
                   std::string* final_name = nullptr);
  Status destroy(std::string_view name);
  /// Makes the pairs config names that are missing, as it says; a dry run
  /// makes none. {"file", "pairs": [{"name", "state", ...}], "errors"}:
  /// state "created", "exists" (left alone), "failed" or "would create".
  json apply_boot_config(const BootConfig& config, bool dry_run);
  /// The ends' names, by unit, a before b; only the members of group when
  /// one is given.
  std::vector<std::string> list(std::string_view group = {}) const;
  /// The interface as JSON (see docs/protocol.md); ENXIO when unknown.
  Result<json> show(std::string_view name);
  /// Compiles the capture's filter and attaches it to its ends.
  Result<StartedCapture> start_capture(const control::CaptureRequest& request);
  /// Prometheus text exposition (version 0.0.4) of the daemon and every end.
  std::string metrics(const CaptureMetrics& captures) const;

  /// Descriptors of the netlink event sockets, to poll.
  std::vector<int> event_fds() const;
  /// Reads the events of fd and brings the model in line with the kernel.
  void on_events(int fd);
  /// Checks that every namespace still exists; tears down the pairs of one
  /// that was removed. Also handles the devices reported gone.
  void check();
  /// Called from any thread when a TAP reader finds its device gone;
  /// check() does the teardown. wake_fd is written to so the poll wakes.
  void report_device_gone(EndId id, const std::string& reason);
  /// What was posted before it was set is applied at the first wake; -1
  /// before the descriptor is closed, so that no thread writes to it then.
  void set_wake_fd(int fd);

 private:
  // controller.cpp
  Status apply(End& end, const control::Action& action);
  Status set_flag_up(End& end, bool up);
  Status set_mtu(End& end, const std::string& value);
  Status set_ether(End& end, const std::string& value);
  Status set_description(End& end, const std::string& value);
  Status impair(End& end, const std::string& words);
  Status move_end(End& end, std::string_view target);
  Status reclaim_end(End& end, std::string_view from);
  Status add_address(End& end, int family, const std::string& cidr);
  Status remove_address(End& end, int family, const std::string& address);
  Status set_capability(End& end, control::CapabilityWord word);
  Status rename_end(End& end, const std::string& new_name);
  // Files the end called old under new_name, which the engine calls it now.
  void follow_rename(const std::string& old, const std::string& new_name);
  Result<std::string> create_pair(std::string_view name);
  Status start_end(End& end, tap::Device device);
  void stop_end(End& end);
  void teardown(const std::string& ifname, const std::string& reason);
  void release_unused_netns();
  End* find(std::string_view name);
  End* find(EndId id);
  void learn_ifindex(End& end);
  /// The other end of end's pair; null once it is gone.
  End* peer_of(const End& end);

  // attach.cpp: an end's stack becomes a VXLAN tunnel or a memif peer; its
  // TAP is parked meanwhile.
  Status attach(End& end, const std::string& words);
  Status open_attachment(End& end, const std::string& words);
  Status open_tunnel(End& end, const vxlan::Config& config);
  Status open_memif(End& end, const memif::Config& config);
  void park_tap(End& end, Attachment attachment);
  Status detach(End& end);
  static std::string attachment_words(const End& end);
  // The TAP of end offers offloads unless its frames must be wire-sized:
  // its own corrupt impairment, or a VXLAN or memif peer.
  void update_offloads(End& end);
  void follow_carrier(End& end);

  // kernel_path.cpp: ends as veths whose hidden peers' program carries the
  // frames, through the engine when the cable needs user space.
  Status open_kernel_path();
  // Whether the state file found at start has an end on the kernel path.
  bool saved_kernel_pairs() const;
  Status start_hidden_poller();
  Result<tap::Device> make_kernel_end(End& end, const kernel::HiddenEnd& at);
  void remove_kernel_end(End& end);
  KernelPath kernel_path_of(const std::shared_ptr<Interface>& ifp, const std::string& hidden_name,
                            const kernel::HiddenEnd& hidden);
  // The hidden devices of an end that could not be adopted.
  void forget_kernel_devices(const std::string& name);
  // A pair's devices, hidden and visible, in one batch.
  void remove_kernel_devices(int unit, const std::string (&hidden_names)[2]);
  // The end's hidden devices, named after hidden_name, as a previous
  // epaird left them.
  Status adopt_kernel_end(End& end, const std::string& hidden_name, std::optional<tap::Device>& device);
  // Where the engine counted for a pair of the state file, its counts in
  // them: the kernel path's blocks at its ends' slots, or the counter file's.
  PairCounters saved_engine_counters(const json& pair) const;
  std::shared_ptr<CounterBlock> kernel_engine_counters(const json& end) const;
  // The counter file's blocks of unit; none when there is no file or no
  // room in it (logged).
  PairCounters file_counters(int unit) const;
  void follow_carrier_in_kernel(End& end);
  // The end's own device loses carrier while an attachment stands in for it.
  void park_in_kernel(End& end);
  // The way X's frames go: the engine when X is impaired, either end is
  // captured or attached; the kernel's otherwise.
  void update_way(End& end);
  void update_ways_of_pair(End& end);
  // What an event of a kernel end changes in its hidden devices and map
  // entry; on the control thread, which is the only one that writes them.
  void apply_kernel_event(End& end, InterfaceEvent event);
  // From another thread: check() applies it.
  void post_kernel_event(EndId id, InterfaceEvent event);
  // Wakes the control thread's poll; posted_mutex_ held.
  void wake_locked() const;

  // kernel_events.cpp
  // Brings the ends in vnet in line with the kernel: those whose links are
  // in only, or every one when only is null or their index is not known.
  void resync(const std::string& vnet, const std::set<int>* only = nullptr);
  // Reads the end's link and addresses in its namespace; the link, if read.
  std::optional<os::LinkInfo> refresh_addresses(End& end);

  // state.cpp
  // Writes the state file; an error is logged.
  void save() const;
  std::string state_text() const;
  // Re-adopts one pair of the state file, epairN; what went wrong, or empty.
  std::string adopt_pair(const json& pair, const std::string& name);
  void drop_pair(const json& pair, const std::string& name);

  ControllerConfig config_;
  StateFile state_file_;
  std::optional<CounterFile> counter_file_;
  json saved_;  // the state file as found at start, for restore()
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<NetnsRegistry> netns_;
  std::unique_ptr<tap::Poller> poller_;
  // Reads every kernel end's hidden TAP, which carries frames only while
  // the end goes the engine's way: one thread for all, asleep otherwise.
  std::unique_ptr<tap::Poller> hidden_poller_;
  os::UniqueFd hidden_netns_;
  std::unique_ptr<os::RouteSocket> hidden_control_;
  std::unique_ptr<kernel::Datapath> datapath_;
  bool new_pairs_in_kernel_ = false;
  std::map<std::string, End, std::less<>> ends_;

  const std::thread::id control_thread_ = std::this_thread::get_id();
  std::mutex posted_mutex_;
  int wake_fd_ = -1;
  std::vector<std::pair<EndId, std::string>> gone_;
  std::vector<std::pair<EndId, InterfaceEvent>> kernel_events_;
};

}  // namespace epair::daemon
