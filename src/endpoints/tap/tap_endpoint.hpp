// A Linux TAP device as the network stack behind an epair end: frames the
// kernel sends out of the TAP are transmitted on the end, frames the end
// receives are written into the TAP. The virtio-net header carries checksum
// and segmentation offload both ways, so a 64 KB TCP segment crosses whole.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "epair/interface.hpp"
#include "epair/status.hpp"
#include "unique_fd.hpp"

namespace epair::tap {

/// The descriptor of one persistent TAP device, opened with IFF_VNET_HDR.
class Device {
 public:
  /// Creates a new TAP named name in the calling thread's namespace, at
  /// ifindex when it is not 0: EEXIST ("interface NAME already exists")
  /// when a device has that name, EBUSY when one has that index.
  static Result<Device> create(std::string_view name, int ifindex = 0);
  /// Attaches to the persistent TAP name in the calling thread's namespace
  /// (a daemon restart); ENODEV when there is none.
  static Result<Device> attach(std::string_view name);

  int fd() const { return fd_.get(); }
  const std::string& name() const { return name_; }
  /// Carrier as the kernel shows it (LOWER_UP, or NO-CARRIER while UP).
  Status set_carrier(bool on);
  /// A persistent TAP outlives its descriptor; a TAP that is not is deleted
  /// when the descriptor closes.
  Status set_persistent(bool on);
  /// With offloads the kernel leaves checksums and segmentation of what it
  /// sends to be done later (the frames cross whole, 64 KB at a time);
  /// without, it does both in software first and every frame is one the
  /// wire would carry. On by default.
  Status set_offloads(bool on);

 private:
  Device(os::UniqueFd fd, std::string name) : fd_(std::move(fd)), name_(std::move(name)) {}
  static Result<Device> open(std::string_view name, bool exclusive, int ifindex = 0);

  os::UniqueFd fd_;
  std::string name_;
};

class Poller;

/// Connects a Device to an Interface. A reader moves frames from the TAP
/// to the engine: a thread of the end's own, or a Poller shared by all
/// ends. The engine's workers write frames into the TAP in
/// Endpoint::input().
class Endpoint final : public epair::Endpoint {
 public:
  /// Called once, on the reading thread (the end's or the poller's), when the TAP device goes away
  /// (deleted, or its namespace destroyed).
  using GoneHandler = std::function<void(const std::string& reason)>;

  Endpoint(std::shared_ptr<Interface> ifp, Device device, FramePool& pool);
  ~Endpoint() override;
  Endpoint(const Endpoint&) = delete;
  Endpoint& operator=(const Endpoint&) = delete;

  /// Starts the end's reader thread, or hands the end to poller when one is
  /// given; the owner attaches the endpoint to the interface
  /// (Interface::attach()) for the other direction.
  Status start(GoneHandler on_gone, Poller* poller = nullptr);
  /// Joins the reader, or takes the end back from the poller; frames still
  /// reach input() until the interface is destroyed or detached. Must not be
  /// called from on_gone.
  void stop();

  Device& device() { return device_; }
  /// Stops the endpoint and hands its device over, for another endpoint
  /// to be made with it later; the endpoint must be detached first.
  Device take_device() {
    stop();
    return std::move(device_);
  }
  void input(Interface& ifp, std::span<Frame* const> burst) noexcept override;

 private:
  friend class Poller;
  enum class ReadResult { kEmpty, kRead, kGone };

  void read_loop();
  // Reads what the TAP holds, up to one burst, without blocking, and
  // transmits it; kGone after on_gone was called.
  ReadResult read_burst();

  std::shared_ptr<Interface> ifp_;
  Device device_;
  FramePool& pool_;
  os::UniqueFd stop_event_;
  std::thread reader_;
  Poller* poller_ = nullptr;
  GoneHandler on_gone_;
  std::once_flag stopped_;
};

/// One thread that reads every TAP end handed to it, in place of a thread
/// per end: it spins over the descriptors while frames come and sleeps in
/// epoll once none has come for the spin time (busy polling, as NAPI's
/// busy_poll or a DPDK polling core do). A frame then costs no thread
/// wakeup, at the price of a CPU kept busy while traffic flows.
class Poller {
 public:
  explicit Poller(std::chrono::microseconds spin);
  ~Poller();
  Poller(const Poller&) = delete;
  Poller& operator=(const Poller&) = delete;

  Status start();
  /// Joins the thread; the ends still handed to it are read no more.
  void stop();

 private:
  friend class Endpoint;
  Status add(Endpoint& end);
  // Returns once the poller no longer reads end; nothing when it did not.
  void remove(Endpoint& end);
  void run();
  // One read of every end; true when any had frames.
  bool pass();
  void forget(Endpoint& end);  // with mutex_ held

  const std::chrono::microseconds spin_;
  os::UniqueFd epoll_;
  os::UniqueFd wake_;
  std::mutex mutex_;
  // Callers of add()/remove() waiting for mutex_: the spinning thread lets
  // them in between two passes.
  std::atomic<int> waiting_{0};
  std::atomic<bool> stopping_{false};
  std::vector<Endpoint*> ends_;
  std::thread thread_;
  std::once_flag stopped_;
};

}  // namespace epair::tap
