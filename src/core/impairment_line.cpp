#include "impairment_line.hpp"

#include <sys/prctl.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cstring>

#include "dispatcher.hpp"
#include "epair/interface.hpp"
#include "pair.hpp"

namespace epair {

namespace {

Frame* copy_of(const Frame& frame) {
  Frame* copy = frame.pool().alloc();
  if (copy == nullptr) return nullptr;
  if (!copy->assign(frame.bytes())) {
    copy->release();
    return nullptr;
  }
  copy->meta = frame.meta;
  return copy;
}

}  // namespace

std::int64_t ImpairmentLine::now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void ImpairmentLine::Lane::reserve(std::size_t n) {
  const std::size_t capacity = std::bit_ceil(std::max<std::size_t>(n, 1));
  if (capacity <= slots_.size()) return;
  std::vector<Entry> grown(capacity);
  for (std::size_t i = 0; i < count_; ++i) grown[i] = slots_[(head_ + i) & (slots_.size() - 1)];
  slots_ = std::move(grown);
  head_ = 0;
}

ImpairmentLine::Entry ImpairmentLine::Lane::pop() {
  const Entry e = slots_[head_];
  head_ = (head_ + 1) & (slots_.size() - 1);
  --count_;
  return e;
}

ImpairmentLine::ImpairmentLine(Interface& owner, std::weak_ptr<Pair> pair, ImpairmentClock& clock,
                               const ImpairmentConfig& config, std::uint64_t seed)
    : owner_(owner), pair_(std::move(pair)), clock_(clock), model_(config, seed) {
  delayed_.reserve(config.limit);
  express_.reserve(config.limit);
}

ImpairmentLine::~ImpairmentLine() { close(); }

ImpairmentConfig ImpairmentLine::config() const {
  std::lock_guard lock(mutex_);
  return model_.config();
}

ImpairmentCounters ImpairmentLine::counters() const {
  std::lock_guard lock(mutex_);
  ImpairmentCounters c = counters_;
  c.held = held_locked();
  return c;
}

void ImpairmentLine::reconfigure(const ImpairmentConfig& config, std::uint64_t seed) {
  std::lock_guard lock(mutex_);
  delayed_.reserve(config.limit);
  express_.reserve(config.limit);
  model_ = ImpairmentModel(config, seed);
}

void ImpairmentLine::close() {
  std::lock_guard lock(mutex_);
  closed_ = true;
  while (!delayed_.empty()) delayed_.pop().frame->release();
  while (!express_.empty()) express_.pop().frame->release();
}

// A checksum left to the receiver is completed first, and nothing is left
// marked as verified: the receiver sees the flipped bit as a wire would show
// it, as a bad checksum.
void ImpairmentLine::corrupt(Frame& frame, std::uint64_t bit) {
  FrameMeta& meta = frame.meta;
  frame.complete_checksum();
  meta.flags &= ~kFrameCsumValid;
  const std::uint64_t index = bit % (static_cast<std::uint64_t>(frame.size()) * 8);
  frame.data()[index / 8] ^= static_cast<std::uint8_t>(1u << (index % 8));
}

void ImpairmentLine::admit(std::span<Frame* const> frames) {
  // Frames due at once with nothing held ahead of them cross after the lock
  // is let go, so that the peer's endpoint may run inline as without an
  // impairment. Nothing can overtake them: the clock crosses under the lock,
  // so an empty line means every earlier frame is in the peer's queue.
  Frame* now_frames[kNowCapacity];
  std::size_t now_count = 0;
  bool closed = false;
  {
    std::lock_guard lock(mutex_);
    const std::int64_t now = now_ns();
    closed = closed_;
    for (Frame* frame : closed ? std::span<Frame* const>() : frames) {
      const ImpairmentModel::Decision decision = model_.decide();
      if (decision.lost) {
        ++counters_.lost;
        frame->release();
        continue;
      }
      Frame* copy = decision.duplicate ? copy_of(*frame) : nullptr;
      admit_one(frame, decision, now, now_frames, now_count);
      if (copy != nullptr) {
        ++counters_.duplicated;
        admit_one(copy, model_.decide(true), now, now_frames, now_count);
      }
    }
    release_due_locked(now);
  }
  // Closed while these frames were on their way in. Cleared: the impairment
  // is gone for the frames to come, and they are such frames. Torn down:
  // they go with the pair.
  if (closed) {
    auto pair = pair_.lock();
    if (pair && !pair->destroyed.load(std::memory_order_acquire)) {
      owner_.cross_to_peer(frames);
    } else {
      for (Frame* frame : frames) frame->release();
    }
  }
  if (now_count != 0) owner_.cross_to_peer({now_frames, now_count});
}

void ImpairmentLine::admit_one(Frame* frame, const ImpairmentModel::Decision& decision, std::int64_t now,
                               Frame** now_frames, std::size_t& now_count) {
  if (decision.corrupt_bit) {
    ++counters_.corrupted;
    // A GSO frame's checksums are the receiver's to trust, per segment; a
    // flipped bit in it would reach the application unseen, which no wire
    // does. The segment that held it would be discarded: so is the frame.
    if ((frame->meta.flags & kFrameGso) != 0) {
      frame->release();
      return;
    }
    corrupt(*frame, *decision.corrupt_bit);
  }
  if (held_locked() >= model_.config().limit) {
    ++counters_.dropped;
    owner_.count_output_drops(1);
    frame->release();
    return;
  }
  std::int64_t due = now;
  if (decision.reordered) {
    ++counters_.reordered;
  } else {
    due = model_.depart(frame->on_wire().bytes, now) + static_cast<std::int64_t>(decision.delay_ns);
    due = std::max(due, last_delayed_due_);
    last_delayed_due_ = due;
  }
  if (due <= now && delayed_.empty() && express_.empty() && now_count < kNowCapacity) {
    now_frames[now_count++] = frame;
    return;
  }
  if (decision.reordered) {
    express_.push({frame, now});
    return;
  }
  if (due > now) ++counters_.delayed;
  delayed_.push({frame, due});
}

void ImpairmentLine::release_due_locked(std::int64_t now) {
  constexpr std::size_t kBatch = 64;
  Frame* batch[kBatch];
  std::size_t n = 0;
  std::shared_ptr<Pair> pair;
  const auto flush = [&] {
    if (n == 0) return;
    if (!pair) pair = pair_.lock();
    if (pair) {
      // Not the peer's endpoint inline: this thread holds the line, and the
      // endpoint may transmit back into it.
      Dispatcher::NoInlineScope no_inline;
      owner_.cross_to_peer({batch, n});
    } else {
      for (std::size_t i = 0; i < n; ++i) batch[i]->release();
    }
    n = 0;
  };
  for (;;) {
    const bool express_due = !express_.empty() && express_.front().due <= now;
    const bool delayed_due = !delayed_.empty() && delayed_.front().due <= now;
    if (!express_due && !delayed_due) break;
    Lane& lane = express_due && (!delayed_due || express_.front().due <= delayed_.front().due) ? express_ : delayed_;
    batch[n++] = lane.pop().frame;
    if (n == kBatch) flush();
  }
  flush();
  std::int64_t next = INT64_MAX;
  if (!express_.empty()) next = express_.front().due;
  if (!delayed_.empty()) next = std::min(next, delayed_.front().due);
  if (next < armed_) {
    armed_ = next;
    clock_.arm(shared_from_this(), next);
  }
}

void ImpairmentLine::fire(std::int64_t armed_for) {
  std::lock_guard lock(mutex_);
  if (armed_for == armed_) armed_ = INT64_MAX;
  if (closed_) return;
  release_due_locked(now_ns());
}

// --- the clock ---

ImpairmentClock::~ImpairmentClock() { stop(); }

void ImpairmentClock::arm(std::shared_ptr<ImpairmentLine> line, std::int64_t due) {
  std::lock_guard lock(mutex_);
  if (stopping_) return;
  if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
  heap_.push_back({due, std::move(line)});
  std::push_heap(heap_.begin(), heap_.end(), std::greater<>());
  if (due < sleeping_until_) wake_.notify_one();
}

void ImpairmentClock::stop() {
  std::thread thread;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    thread = std::move(thread_);
    wake_.notify_one();
  }
  if (thread.joinable()) thread.join();
  // Let go of the lines outside the mutex: the last reference closes a
  // line, which takes its own mutex, and lines take the clock's after theirs.
  std::vector<Armed> armed;
  {
    std::lock_guard lock(mutex_);
    armed.swap(heap_);
  }
}

void ImpairmentClock::run() {
  // The default slack of 50 us would be the floor of every delay's error.
  ::prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    if (heap_.empty()) {
      sleeping_until_ = INT64_MAX;
      wake_.wait(lock);
      continue;
    }
    const std::int64_t due = heap_.front().due;
    const std::int64_t now = ImpairmentLine::now_ns();
    if (due > now) {
      sleeping_until_ = due;
      wake_.wait_until(lock, std::chrono::steady_clock::time_point(std::chrono::nanoseconds(due)));
      continue;
    }
    sleeping_until_ = INT64_MIN;
    std::pop_heap(heap_.begin(), heap_.end(), std::greater<>());
    Armed armed = std::move(heap_.back());
    heap_.pop_back();
    lock.unlock();
    armed.line->fire(armed.due);
    armed.line.reset();
    lock.lock();
  }
}

}  // namespace epair
