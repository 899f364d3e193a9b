// A receive queue of one side and the state of its wakeup handshake.
//
// Producers (transmitters on the peer) enqueue and then call
// Dispatcher::wake(); one worker at a time drains. state_ moves
//
//   IDLE --(producer's CAS, takes a keep-alive of the pair)--> WAKING
//   WAKING --(worker pops it from its run list)--> RUNNING
//   RUNNING --(worker, queue flushed)--> IDLE, then re-check the ring
//   RUNNING --(worker, budget spent)--> WAKING, back on the run list
//   RUNNING --(closed_, the worker)--> drain --> DEAD
//   IDLE --(closed_, close())--> REAPING --> drain --> DEAD
//   DEAD --(a producer that raced past destroy)--> REAPING --> drain --> DEAD
//   after each drain: DEAD (seq_cst exchange), re-check the ring, drain again
//
// DEAD is final: no producer can schedule the queue again. A frame that a
// transmitter queued after the drain is freed by that transmitter (REAPING
// makes it the single consumer meanwhile).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "epair/frame.hpp"
#include "epair/ring.hpp"

namespace epair {

class Interface;
struct Pair;

class ReceiveQueue {
 public:
  enum State : std::uint32_t { kIdle, kWaking, kRunning, kDead, kReaping };

  ReceiveQueue(Interface& owner, std::uint32_t depth, std::uint32_t worker)
      : owner_(owner), ring_(depth), worker_(worker) {}
  /// Frees frames that raced into the queue after it was drained.
  ~ReceiveQueue() { drain(); }

  Interface& owner() const { return owner_; }
  std::uint32_t worker() const { return worker_; }
  std::uint32_t depth() const { return ring_.capacity(); }

  /// Frees every queued frame. Only the owner of the consumer side (the
  /// worker in RUNNING, or whoever moved the queue to DEAD) may call it.
  void drain() {
    Frame* frames[64];
    while (std::uint32_t n = ring_.dequeue_burst(frames, 64)) {
      for (std::uint32_t i = 0; i < n; ++i) frames[i]->release();
      count_done(n);
    }
  }

  /// Frames delivered or freed since construction, wrapping at 2^32. With
  /// the ring's reserved() read after it: frames queued and not yet through,
  /// on the ring or in a worker's hands.
  std::uint32_t done() const { return done_.load(std::memory_order_acquire); }

 private:
  friend class Dispatcher;
  friend class Interface;

  // release: a reader that sees the new count also sees what the endpoint
  // did with the frames (its room).
  void count_done(std::uint32_t n) {
    done_.store(done_.load(std::memory_order_relaxed) + n, std::memory_order_release);
  }

  Interface& owner_;
  MpscRing<Frame*> ring_;
  const std::uint32_t worker_;

  alignas(kCacheLine) std::atomic<std::uint32_t> state_{kIdle};
  std::atomic<bool> closed_{false};
  // Completed runs; lets detach() see that a run it raced with has ended.
  std::atomic<std::uint64_t> runs_{0};
  // Held from IDLE->WAKING until the run that follows ends, so that a pair
  // destroyed meanwhile stays in memory for the worker.
  std::shared_ptr<Pair> keepalive_;
  // Link in the worker's run list; guarded by that worker's mutex.
  ReceiveQueue* next_ = nullptr;
  // Frames delivered or freed, wrapping at 2^32 like the ring's positions.
  // Written by the consumer side alone, once a burst; a line of its own, as
  // producers write state_'s at every wakeup.
  alignas(kCacheLine) std::atomic<std::uint32_t> done_{0};
};

}  // namespace epair
