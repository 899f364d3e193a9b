// A Linux TAP device as the network stack behind an epair end: frames the
// kernel sends out of the TAP are transmitted on the end, frames the end
// receives are written into the TAP. The virtio-net header carries checksum
// and segmentation offload both ways, so a 64 KB TCP segment crosses whole.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "epair/interface.hpp"
#include "epair/status.hpp"
#include "unique_fd.hpp"

namespace epair::os {

/// The descriptor of one persistent TAP device, opened with IFF_VNET_HDR.
class TapDevice {
 public:
  /// Creates a new TAP named name in the calling thread's namespace: EEXIST
  /// ("interface NAME already exists") when a device has that name.
  static Result<TapDevice> create(std::string_view name);
  /// Attaches to the persistent TAP name in the calling thread's namespace
  /// (a daemon restart); ENODEV when there is none.
  static Result<TapDevice> attach(std::string_view name);

  int fd() const { return fd_.get(); }
  const std::string& name() const { return name_; }
  /// Carrier as the kernel shows it (LOWER_UP, or NO-CARRIER while UP).
  Status set_carrier(bool on);
  /// A persistent TAP outlives its descriptor; a TAP that is not is deleted
  /// when the descriptor closes.
  Status set_persistent(bool on);

 private:
  TapDevice(UniqueFd fd, std::string name) : fd_(std::move(fd)), name_(std::move(name)) {}
  static Result<TapDevice> open(std::string_view name, bool exclusive);

  UniqueFd fd_;
  std::string name_;
};

/// Connects a TapDevice to an Interface. One reader thread per end moves
/// frames from the TAP to the engine; the engine's workers write frames
/// into the TAP in Endpoint::input().
class TapEndpoint final : public Endpoint {
 public:
  /// Called once, on the reader thread, when the TAP device goes away
  /// (deleted, or its namespace destroyed).
  using GoneHandler = std::function<void(const std::string& reason)>;

  TapEndpoint(std::shared_ptr<Interface> ifp, TapDevice device, FramePool& pool);
  ~TapEndpoint() override;
  TapEndpoint(const TapEndpoint&) = delete;
  TapEndpoint& operator=(const TapEndpoint&) = delete;

  /// Starts the reader thread; the owner attaches the endpoint to the
  /// interface (Interface::attach()) for the other direction.
  Status start(GoneHandler on_gone);
  /// Joins the reader; frames still reach input() until the interface is
  /// destroyed or detached. Must not be called from on_gone.
  void stop();

  TapDevice& device() { return device_; }
  void input(Interface& ifp, std::span<Frame* const> burst) noexcept override;

 private:
  void read_loop();

  std::shared_ptr<Interface> ifp_;
  TapDevice device_;
  FramePool& pool_;
  UniqueFd stop_event_;
  std::thread reader_;
  GoneHandler on_gone_;
  std::once_flag stopped_;
};

}  // namespace epair::os
