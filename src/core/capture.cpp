#include "epair/capture.hpp"

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <ctime>
#include <mutex>

#include "epair/frame.hpp"

namespace epair {

namespace {

std::uint64_t realtime_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

}  // namespace

// What the taps share with the reader. Frames move between two rings: free
// slots (taken by any tapping thread, given back by the reader) and captured
// ones (filled by the taps, read by the reader). Both hold every slot, so
// putting a slot back never fails.
struct Capture::Sink {
  Sink(const CaptureConfig& config, std::uint32_t max_frame)
      : snaplen(std::max<std::uint32_t>(1, std::min(config.snaplen, max_frame))),
        slots(std::max<std::uint32_t>(16, config.buffer_bytes / snaplen)),
        in(config.in),
        out(config.out),
        filter(config.filter),
        memory(std::make_unique<std::uint8_t[]>(static_cast<std::size_t>(slots) * snaplen)),
        frames(slots),
        free(slots),
        ready(slots) {
    for (std::uint32_t i = 0; i < slots; ++i) {
      frames[i].data = memory.get() + static_cast<std::size_t>(i) * snaplen;
      CapturedFrame* frame = &frames[i];
      free.enqueue(frame);
    }
  }

  void tap(std::uint32_t port, const Frame& frame, TapDirection direction) noexcept {
    if (!(direction == TapDirection::kIn ? in : out)) return;
    seen.fetch_add(1, std::memory_order_relaxed);
    const std::uint32_t length = std::min(frame.size(), snaplen);
    if (filter && !filter->match({frame.data(), length}, frame.size())) return;
    matched.fetch_add(1, std::memory_order_relaxed);
    CapturedFrame* slot = nullptr;
    if (!free.dequeue(slot)) {
      dropped.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    slot->timestamp_ns = realtime_ns();
    slot->wire_length = frame.size();
    slot->length = length;
    slot->port = port;
    slot->direction = direction;
    std::memcpy(slot->data, frame.data(), length);
    ready.enqueue(slot);
    // Pairs with the fence in wait(): either the reader sees the frame
    // before it sleeps, or this thread sees it sleeping and wakes it.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (sleeping.load(std::memory_order_relaxed)) {
      std::lock_guard lock(mutex);
      sleeping.store(false, std::memory_order_relaxed);
      wakeup.notify_one();
    }
  }

  const std::uint32_t snaplen;
  const std::uint32_t slots;
  const bool in;
  const bool out;
  const std::shared_ptr<const CaptureFilter> filter;
  std::unique_ptr<std::uint8_t[]> memory;
  std::vector<CapturedFrame> frames;
  MpmcRing<CapturedFrame*> free;
  MpmcRing<CapturedFrame*> ready;
  alignas(kCacheLine) std::atomic<std::uint64_t> seen{0};
  std::atomic<std::uint64_t> matched{0};
  std::atomic<std::uint64_t> dropped{0};
  alignas(kCacheLine) std::atomic<bool> sleeping{false};
  std::mutex mutex;
  std::condition_variable wakeup;
};

Capture::Capture(const CaptureConfig& config, std::uint32_t max_frame)
    : sink_(std::make_shared<Sink>(config, max_frame)) {}

Capture::~Capture() { detach(); }

std::uint32_t Capture::attach(Interface& ifp) {
  const auto port = static_cast<std::uint32_t>(taps_.size());
  // The tap owns the sink: a transmitter may still run it once after
  // detach() (Interface::add_tap()).
  taps_.push_back(ifp.add_tap([sink = sink_, port](const Interface&, const Frame& frame, TapDirection direction) {
    sink->tap(port, frame, direction);
  }));
  return port;
}

void Capture::detach() {
  for (auto& tap : taps_) tap.reset();
}

std::size_t Capture::read(std::span<CapturedFrame*> out) {
  return sink_->ready.dequeue_burst(out.data(), static_cast<std::uint32_t>(out.size()));
}

void Capture::release(std::span<CapturedFrame* const> frames) {
  sink_->free.enqueue_burst(frames.data(), static_cast<std::uint32_t>(frames.size()));
}

bool Capture::wait(std::chrono::milliseconds timeout) {
  Sink& sink = *sink_;
  std::unique_lock lock(sink.mutex);
  sink.sleeping.store(true, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (sink.ready.empty()) {
    sink.wakeup.wait_for(lock, timeout, [&] { return !sink.sleeping.load(std::memory_order_relaxed); });
  }
  sink.sleeping.store(false, std::memory_order_relaxed);
  return !sink.ready.empty();
}

CaptureCounters Capture::counters() const {
  return {sink_->seen.load(std::memory_order_relaxed), sink_->matched.load(std::memory_order_relaxed),
          sink_->dropped.load(std::memory_order_relaxed)};
}

std::uint32_t Capture::snaplen() const { return sink_->snaplen; }

std::uint32_t Capture::slots() const { return sink_->slots; }

}  // namespace epair
