// epaird's control socket: newline-delimited JSON requests and responses
// (docs/protocol.md), authorised by the peer's credentials.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>

#include "capture_session.hpp"
#include "controller.hpp"

namespace epair::daemon {

struct Peer {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
};

struct AccessPolicy {
  /// Besides root, members of this group may change things.
  std::optional<gid_t> group;
  /// Read-only requests from anyone (true) or only from those who may change.
  bool readers_all = true;
};

/// Whether peer (its primary or a supplementary group) is in gid.
bool peer_in_group(const Peer& peer, gid_t gid);

/// Answers one request line; never throws. A capture request that
/// succeeds fills *capture (a request without a place for it is refused):
/// the connection then carries the capture's pcapng stream.
json handle_request(Controller& controller, const AccessPolicy& policy, const Peer& peer, std::string_view line,
                    std::optional<StartedCapture>* capture = nullptr);

struct ServerConfig {
  std::filesystem::path socket_path;
  AccessPolicy policy;
  /// Where to serve Prometheus metrics over HTTP: "HOST:PORT" on a loopback
  /// address, "unix:PATH", or empty for nowhere.
  std::string metrics;
};

/// Blocks SIGTERM, SIGINT and SIGHUP in the calling thread, and so in every
/// thread it starts afterwards: run() reads them from a signalfd, which only
/// works when no thread takes them the default way (ending the process with
/// no cleanup). Returns the set.
sigset_t block_stop_signals();

class Server {
 public:
  Server(Controller& controller, ServerConfig config);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  /// Binds the socket; an error when another daemon answers on it.
  Status listen();
  /// Serves until SIGTERM or SIGINT. The calling thread must be the first,
  /// or block_stop_signals() must have run before any other thread began.
  Status run();

 private:
  struct Client {
    Peer peer;
    std::string buffer;
  };
  void accept_clients();
  void serve(int fd);
  void close_client(int fd);
  void watch_event_fds();
  void accept_http();
  void serve_http(int fd);
  void close_http(int fd);
  CaptureMetrics capture_metrics() const;
  void reap_captures();

  Controller& controller_;
  ServerConfig config_;
  int listen_fd_ = -1;
  int epoll_fd_ = -1;
  int signal_fd_ = -1;
  int wake_fd_ = -1;
  std::map<int, Client> clients_;
  std::uint64_t refused_clients_ = 0;
  std::vector<std::unique_ptr<CaptureSession>> captures_;
  // Frames lost by captures that have ended, per interface: the metric is a
  // counter and must not go back when a capture ends.
  std::map<std::string, std::uint64_t, std::less<>> ended_capture_drops_;
  int metrics_fd_ = -1;
  std::map<int, std::string> http_clients_;
  std::set<int> event_fds_;
};

}  // namespace epair::daemon
