// Where an impaired end's frames wait, and the one thread that lets them go.
//
// An ImpairmentLine belongs to one end while an impairment is set on it. It
// holds the frames admitted and not yet crossed in two lanes, each in order
// of its frames' times: the delayed lane (token bucket + delay, kept in
// order by moving a jittered time up to the one ahead) and the express lane
// (reordered frames, due at once). So a line's next frame is the earlier of
// two lane heads, and 100k frames in flight cost 100k ring slots and no
// timer each.
//
// The ImpairmentClock keeps, per line that holds frames, the time of its
// next frame in a heap, and one thread sleeps until the earliest. A line
// arms the clock only when its next time moves earlier (an empty line gets
// a frame, or a reordered one jumps ahead): a busy line costs no syscall per
// frame, and a wakeup lets every frame that is due go at once. Frames whose
// time has come when they are admitted cross on the transmitting thread,
// outside the line's lock when nothing is held ahead of them.
//
// Locks: a line's mutex, then the clock's; the clock's thread never holds
// its own while it takes a line's.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "epair/frame.hpp"
#include "epair/impairment.hpp"

namespace epair {

class Interface;
struct Pair;
class ImpairmentClock;

class ImpairmentLine : public std::enable_shared_from_this<ImpairmentLine> {
 public:
  ImpairmentLine(Interface& owner, std::weak_ptr<Pair> pair, ImpairmentClock& clock, const ImpairmentConfig& config,
                 std::uint64_t seed);
  ~ImpairmentLine();
  ImpairmentLine(const ImpairmentLine&) = delete;
  ImpairmentLine& operator=(const ImpairmentLine&) = delete;

  /// Takes the frames (they passed steps 1-3) and decides for each; those
  /// whose time has come cross now. Any thread.
  void admit(std::span<Frame* const> frames);
  /// New settings for the frames to come; frames held keep their times.
  /// The limit may fall below the frames held: no new one is taken until
  /// they drain below it.
  void reconfigure(const ImpairmentConfig& config, std::uint64_t seed);
  /// Frees every frame held. For teardown and for clearing the
  /// impairment: frames admitted later (by a thread that took the line just
  /// before) cross at once, unimpaired, while the pair lives.
  void close();
  /// Called by the clock's thread: lets due frames cross, re-arms.
  void fire(std::int64_t armed_for);

  ImpairmentConfig config() const;
  ImpairmentCounters counters() const;

  static std::int64_t now_ns();

 private:
  struct Entry {
    Frame* frame;
    std::int64_t due;
  };
  // A FIFO of entries in a power-of-two ring; grows only on reconfigure.
  class Lane {
   public:
    void reserve(std::size_t n);
    bool empty() const { return count_ == 0; }
    std::size_t size() const { return count_; }
    const Entry& front() const { return slots_[head_]; }
    void push(Entry e) { slots_[(head_ + count_++) & (slots_.size() - 1)] = e; }
    Entry pop();

   private:
    std::vector<Entry> slots_;
    std::size_t head_ = 0;
    std::size_t count_ = 0;
  };

  // Frames one admit() may cross after its lock: a burst of the transmit
  // path (64) and a copy of each.
  static constexpr std::size_t kNowCapacity = 128;
  void admit_one(Frame* frame, const ImpairmentModel::Decision& decision, std::int64_t now, Frame** now_frames,
                 std::size_t& now_count);
  void corrupt(Frame& frame, std::uint64_t bit);
  // Crosses every frame due by now, in time order; then arms the clock for
  // the next one if that is earlier than what the clock has.
  void release_due_locked(std::int64_t now);
  std::size_t held_locked() const { return delayed_.size() + express_.size(); }

  Interface& owner_;
  const std::weak_ptr<Pair> pair_;
  ImpairmentClock& clock_;

  mutable std::mutex mutex_;
  ImpairmentModel model_;
  Lane delayed_;
  Lane express_;
  std::int64_t last_delayed_due_ = INT64_MIN;
  // The time the clock will call fire() for; INT64_MAX when not armed.
  std::int64_t armed_ = INT64_MAX;
  bool closed_ = false;
  ImpairmentCounters counters_;
};

class ImpairmentClock {
 public:
  ImpairmentClock() = default;
  /// Calls stop().
  ~ImpairmentClock();
  ImpairmentClock(const ImpairmentClock&) = delete;
  ImpairmentClock& operator=(const ImpairmentClock&) = delete;

  /// Calls line->fire(due) at due or soon after, on the clock's thread
  /// (started on the first call). Lines are held until then.
  void arm(std::shared_ptr<ImpairmentLine> line, std::int64_t due);
  /// Stops and joins the thread; armed lines are let go unfired.
  void stop();

 private:
  struct Armed {
    std::int64_t due;
    std::shared_ptr<ImpairmentLine> line;
    bool operator>(const Armed& other) const { return due > other.due; }
  };
  void run();

  std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<Armed> heap_;  // min-heap on due
  std::int64_t sleeping_until_ = INT64_MAX;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace epair
