// epaird's model: the engine, a TAP end for each interface, the network
// namespaces the ends live in, and the state file that survives restarts.
// Every call is made from the daemon's control thread, except
// report_device_gone(), which reader threads call.
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
#include <vector>

#include "epair/capture.hpp"
#include "epair/engine.hpp"
#include "memif_endpoint.hpp"
#include "netlink.hpp"
#include "netns.hpp"
#include "protocol.hpp"
#include "tap_endpoint.hpp"
#include "unique_fd.hpp"
#include "vxlan_endpoint.hpp"

namespace epair::daemon {

/// A capture attached to its ends, for a CaptureSession to stream.
struct StartedCapture {
  std::unique_ptr<Capture> capture;
  std::vector<std::shared_ptr<Interface>> ifps;
  std::uint64_t count = 0;  ///< frames to deliver; 0 for no limit
};

/// What the metrics say of captures: per interface name, the captures
/// running on it and the frames captures on it lost (running and ended).
struct CaptureMetrics {
  std::map<std::string, std::uint64_t, std::less<>> running;
  std::map<std::string, std::uint64_t, std::less<>> dropped;
};

struct ControllerConfig {
  EngineConfig engine;
  std::filesystem::path state_file;
  /// Zero: a reader thread per TAP end. Otherwise one TapPoller reads all
  /// ends and spins this long after the last frame before it sleeps.
  std::chrono::microseconds busy_poll{0};
};

class Controller {
 public:
  ~Controller();
  Controller(const Controller&) = delete;
  Controller& operator=(const Controller&) = delete;

  /// Reads the state file (throws std::runtime_error when it is unreadable)
  /// and starts the engine where the last run left its MAC index.
  explicit Controller(ControllerConfig config);
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
  Status configure(std::string_view name, const std::vector<Action>& actions);
  Status destroy(std::string_view name);
  std::vector<std::string> list() const;
  /// The interface as JSON (see docs/protocol.md); ENXIO when unknown.
  Result<json> show(std::string_view name);
  /// Compiles the capture's filter and attaches it to its ends.
  Result<StartedCapture> start_capture(const CaptureRequest& request);
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
  void report_device_gone(const std::string& ifname, const std::string& reason);
  void set_wake_fd(int fd) { wake_fd_ = fd; }

 private:
  struct Netns {
    os::NetnsSpec spec;
    os::NetnsId id;
    os::UniqueFd fd;
    std::unique_ptr<os::RouteSocket> control;
    std::unique_ptr<os::RouteSocket> monitor;
  };
  struct End {
    std::shared_ptr<Interface> ifp;
    std::shared_ptr<os::TapEndpoint> tap;  ///< null while attached (VXLAN or memif)
    std::shared_ptr<vxlan::Endpoint> vxlan;
    std::shared_ptr<memif::Endpoint> memif;
    std::optional<os::TapDevice> parked;  ///< the TAP, kept while attached
    Subscription carrier;
    std::vector<os::AddressInfo> addresses;
    int ifindex = 0;  ///< the TAP's index in its namespace; 0 until read
  };

  Result<Netns*> netns(const std::string& vnet);
  Result<Netns*> netns_for_move(std::string_view target);
  std::string vnet_of(const os::NetnsSpec& spec) const;
  void release_unused_netns();
  Status apply(End& end, const Action& action);
  Status set_flag_up(End& end, bool up);
  Status impair(End& end, const std::string& words);
  // attach/detach: an end's stack becomes a VXLAN tunnel or a memif peer;
  // its TAP is parked meanwhile.
  Status attach(End& end, const std::string& words);
  Status open_attachment(End& end, const std::string& words);
  Status open_tunnel(End& end, const vxlan::Config& config);
  Status open_memif(End& end, const memif::Config& config);
  void park_tap(End& end, std::shared_ptr<Endpoint> endpoint);
  Status detach(End& end);
  static std::string attachment(const End& end);
  // The TAP of end offers offloads unless its frames must be wire-sized:
  // its own corrupt impairment, or a VXLAN peer.
  void update_offloads(End& end);
  Status move_end(End& end, std::string_view target);
  Status reclaim_end(End& end, std::string_view from);
  Status add_address(End& end, int family, const std::string& cidr);
  Status start_end(End& end, os::TapDevice device);
  void stop_end(End& end);
  void follow_carrier(End& end);
  Result<std::string> create_pair(std::string_view name);
  void teardown(const std::string& ifname, const std::string& reason);
  // Brings the ends in vnet in line with the kernel: those whose links are
  // in only, or every one when only is null or their index is not known.
  void resync(const std::string& vnet, const std::set<int>* only = nullptr);
  // Reads the end's link and addresses in its namespace; the link, if read.
  std::optional<os::LinkInfo> refresh_addresses(End& end);
  // Writes the state file: the text goes over the space reserve_state()
  // wrote, so a save after a reservation needs no new space; an error is
  // logged.
  void save() const;
  std::string state_text() const;
  End* find(std::string_view name);

  ControllerConfig config_;
  json saved_;  // the state file as found at start, for restore()
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<os::TapPoller> poller_;
  std::map<std::string, Netns, std::less<>> netns_;
  std::map<std::string, End, std::less<>> ends_;
  int wake_fd_ = -1;

  std::mutex gone_mutex_;
  std::vector<std::pair<std::string, std::string>> gone_;
};

}  // namespace epair::daemon
