#include "epair/capture.hpp"

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <ctime>
#include <mutex>
#include <thread>

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
    aside.reserve(slots);
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
      const std::uint32_t queued = ready.enqueue_burst(taken, got);
      if (queued < got) set_aside({taken + queued, got - queued});
      handed_over = handed_over || queued != 0;
    }
    if (!handed_over) return;
    // With wait(), Dekker's handshake in seq_cst operations (no fences,
    // which ThreadSanitizer does not model): either the reader sees this
    // hand-over before it sleeps, or this thread sees it sleeping.
    handed.fetch_add(1, std::memory_order_seq_cst);
    if (sleeping.load(std::memory_order_seq_cst)) {
      std::lock_guard lock(mutex);
      sleeping.store(false, std::memory_order_relaxed);
      wakeup.notify_one();
    }
  }

  // The ring refuses a slot while a consumer of the lap before is still
  // between taking and handing back that position (a preempted thread).
  // Slots that could not be handed over are lost to this capture's frames
  // (counted) and kept here until the reader puts them back in the free
  // ring; the tapping thread never waits for the reader.
  void set_aside(std::span<CapturedFrame* const> spare) noexcept {
    dropped.fetch_add(spare.size(), std::memory_order_relaxed);
    std::lock_guard lock(aside_mutex);
    aside.insert(aside.end(), spare.begin(), spare.end());
    aside_count.store(aside.size(), std::memory_order_release);
  }

  // The reader's: slots back to the free ring, waiting out a preempted
  // tapping thread if it must.
  void give_back(std::span<CapturedFrame* const> spare) {
    while (!spare.empty()) {
      const std::uint32_t n = free.enqueue_burst(spare.data(), static_cast<std::uint32_t>(spare.size()));
      spare = spare.subspan(n);
      if (!spare.empty()) std::this_thread::yield();
    }
  }

  void recover_aside() {
    if (aside_count.load(std::memory_order_acquire) == 0) return;
    std::vector<CapturedFrame*> taken;
    {
      std::lock_guard lock(aside_mutex);
      taken.swap(aside);
      aside_count.store(0, std::memory_order_release);
    }
    give_back(taken);
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
  alignas(kCacheLine) std::atomic<std::uint64_t> handed{0};
  std::atomic<bool> sleeping{false};
  std::uint64_t handed_seen = 0;  // the reader's own
  std::mutex mutex;
  std::mutex aside_mutex;
  std::vector<CapturedFrame*> aside;  // reserved to hold every slot: never allocates in set_aside()
  std::atomic<std::size_t> aside_count{0};
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
  sink_->give_back(frames);
  sink_->recover_aside();
}

bool Capture::wait(std::chrono::milliseconds timeout) {
  Sink& sink = *sink_;
  std::unique_lock lock(sink.mutex);
  sink.sleeping.store(true, std::memory_order_seq_cst);
  const std::uint64_t handed = sink.handed.load(std::memory_order_seq_cst);
  // Nothing handed over since the last look, and the ring is empty: sleep.
  if (handed == sink.handed_seen && sink.ready.empty()) {
    sink.wakeup.wait_for(lock, timeout, [&] { return !sink.sleeping.load(std::memory_order_relaxed); });
  }
  sink.handed_seen = handed;
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
