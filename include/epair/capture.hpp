// Capture: copies of the frames that cross one or more interfaces, taken
// where FreeBSD's epair taps them to bpf(4) (Interface::add_tap()), filtered
// there, and handed to a reader through a bounded ring. The data path never
// waits for the reader: when the ring is full a frame is dropped from the
// capture and counted, and the wire frame goes on untouched.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "epair/interface.hpp"
#include "epair/ring.hpp"

namespace epair {

/// Decides which frames a capture keeps; runs on the data path, on any
/// thread, so it must be thread-safe and must not block.
class CaptureFilter {
 public:
  virtual ~CaptureFilter() = default;
  /// data holds the first bytes of the frame (the capture's snap length),
  /// wire_length is the whole frame's.
  virtual bool match(std::span<const std::uint8_t> data, std::uint32_t wire_length) const noexcept = 0;
};

struct CaptureConfig {
  /// Bytes kept of each frame (tcpdump's -s); frames longer are cut.
  std::uint32_t snaplen = 262144;
  /// Memory for frames waiting to be read; the ring holds
  /// buffer_bytes / min(snaplen, largest frame) of them, at least 16.
  std::uint32_t buffer_bytes = 4u << 20;
  bool in = true;   ///< frames the interface receives
  bool out = true;  ///< frames the interface transmits
  /// Null keeps every frame.
  std::shared_ptr<const CaptureFilter> filter;
};

/// One captured frame, valid until given back with Capture::release().
struct CapturedFrame {
  std::uint64_t timestamp_ns = 0;  ///< CLOCK_REALTIME when tapped
  std::uint32_t wire_length = 0;   ///< the frame's length on the wire
  std::uint32_t length = 0;        ///< bytes kept: min(wire_length, snaplen)
  std::uint32_t port = 0;          ///< which attached interface (attach()'s number)
  TapDirection direction = TapDirection::kOut;
  std::uint8_t* data = nullptr;
};

struct CaptureCounters {
  std::uint64_t seen = 0;     ///< frames shown to the capture in its directions
  std::uint64_t matched = 0;  ///< of those, kept by the filter
  std::uint64_t dropped = 0;  ///< matched but lost: the ring was full
};

/// Owns the taps: destroying it (or detach()) stops the capture. Frames go
/// to one reader thread; any number of threads may be tapping at once.
class Capture {
 public:
  /// max_frame: the largest frame the interfaces carry (the pool's buffer
  /// size), so that a slot never holds more than a frame can be.
  Capture(const CaptureConfig& config, std::uint32_t max_frame);
  ~Capture();
  Capture(const Capture&) = delete;
  Capture& operator=(const Capture&) = delete;

  /// Taps ifp; its frames carry the number returned (0, 1, ... in order).
  std::uint32_t attach(Interface& ifp);
  /// Stops every tap. Frames already captured can still be read.
  void detach();

  /// Moves up to out.size() captured frames into out, oldest first; never
  /// blocks. Each must be given back with release().
  std::size_t read(std::span<CapturedFrame*> out);
  void release(std::span<CapturedFrame* const> frames);
  /// Waits up to timeout for a frame to read; true when one is there.
  bool wait(std::chrono::milliseconds timeout);

  CaptureCounters counters() const;
  std::uint32_t snaplen() const;
  std::uint32_t slots() const;

 private:
  struct Sink;
  std::shared_ptr<Sink> sink_;
  std::vector<Subscription> taps_;
};

}  // namespace epair
