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

  // A burst costs one slot allocation, one clock read and one hand-over,
  // however many of its frames the filter keeps.
  void tap(std::uint32_t port, std::span<Frame* const> burst, TapDirection direction) noexcept {
    if (!(direction == TapDirection::kIn ? in : out)) return;
    seen.fetch_add(burst.size(), std::memory_order_relaxed);
    constexpr std::size_t kChunk = 64;
    bool handed_over = false;
    for (std::size_t first = 0; first < burst.size(); first += kChunk) {
      const std::span<Frame* const> chunk = burst.subspan(first, std::min(kChunk, burst.size() - first));
      const Frame* kept[kChunk];
      std::uint32_t count = 0;
      for (const Frame* frame : chunk) {
        if (!filter || filter->match({frame->data(), std::min(frame->size(), snaplen)}, frame->size())) {
          kept[count++] = frame;
        }
      }
      if (count == 0) continue;
      matched.fetch_add(count, std::memory_order_relaxed);
      CapturedFrame* taken[kChunk];
      const std::uint32_t got = free.dequeue_burst(taken, count);
      if (got < count) dropped.fetch_add(count - got, std::memory_order_relaxed);
      if (got == 0) continue;
      const std::uint64_t now = realtime_ns();
      for (std::uint32_t i = 0; i < got; ++i) {
        CapturedFrame& slot = *taken[i];
        slot.timestamp_ns = now;
        slot.wire_length = kept[i]->size();
        slot.length = std::min(kept[i]->size(), snaplen);
        slot.port = port;
        slot.direction = direction;
        std::memcpy(slot.data, kept[i]->data(), slot.length);
      }
      ready.enqueue_burst(taken, got);
      handed_over = true;
    }
    if (!handed_over) return;
    // Pairs with the fence in wait(): either the reader sees the frames
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
  taps_.push_back(ifp.add_tap([sink = sink_, port](const Interface&, std::span<Frame* const> frames,
                                                   TapDirection direction) { sink->tap(port, frames, direction); }));
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
