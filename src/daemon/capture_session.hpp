// One `epairctl capture`: after epaird answers the request, the client's
// connection carries a pcapng stream from the Capture, written by a thread
// of its own so that a slow reader delays only itself. It ends when the
// client shuts down its side (Ctrl-C), the count is reached, an end is
// destroyed, or the daemon stops; the last block holds the counters.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "epair/capture.hpp"

namespace epair::daemon {

class CaptureSession {
 public:
  /// Takes the connected socket fd; ifps are the ends attached to capture,
  /// in port order.
  CaptureSession(int fd, std::unique_ptr<Capture> capture, std::vector<std::shared_ptr<Interface>> ifps,
                 std::uint64_t count);
  ~CaptureSession();
  CaptureSession(const CaptureSession&) = delete;
  CaptureSession& operator=(const CaptureSession&) = delete;

  void start();
  /// Ends the stream (with its counters) and joins the thread.
  void stop();
  bool finished() const { return finished_.load(std::memory_order_acquire); }
  const std::vector<std::shared_ptr<Interface>>& interfaces() const { return ifps_; }
  CaptureCounters counters() const { return capture_->counters(); }

 private:
  void run();
  // Sends out whole; false once the client is gone or the daemon stops.
  bool send_all(std::string& out);
  // True when the client shut down its side or went away.
  bool client_done();

  const int fd_;
  std::unique_ptr<Capture> capture_;
  std::vector<std::shared_ptr<Interface>> ifps_;
  const std::uint64_t count_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> finished_{false};
  std::thread thread_;
};

}  // namespace epair::daemon
