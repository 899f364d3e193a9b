// Workers that drain receive queues and hand bursts to endpoints.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "receive_queue.hpp"

namespace epair {

struct DispatcherConfig {
  std::uint32_t workers = 1;
  std::uint32_t burst = 32;
  std::uint32_t bursts_per_run = 8;
  std::uint32_t spin_us = 50;
  bool pin_workers = false;
  bool deliver_inline = false;
};

class Dispatcher {
 public:
  explicit Dispatcher(const DispatcherConfig& config);
  /// Calls stop().
  ~Dispatcher();
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  /// Stops and joins the workers; idempotent. Every queue must be DEAD or
  /// never scheduled by then (Engine destroys every pair first).
  void stop();

  const DispatcherConfig& config() const { return config_; }
  /// The worker for the next new queue (round robin, like RSS buckets).
  std::uint32_t assign_worker();

  /// Producer side of the handshake, after an enqueue on q: schedules q's
  /// worker when q was IDLE. Never blocks for long and never allocates.
  void wake(ReceiveQueue& q, Pair& pair);

  /// Closes q for good: afterwards no frame of q reaches an endpoint and its
  /// frames are freed. Waits for a worker delivering from q to finish, unless
  /// called on a worker thread (inside Endpoint::input), where waiting could
  /// deadlock: then the worker that runs q next drains it.
  void close(ReceiveQueue& q);

  /// Returns once no worker is in a run of q that started before the call,
  /// unless called on a worker thread.
  void quiesce(ReceiveQueue& q);

  /// True on a worker thread of any dispatcher.
  static bool on_worker_thread();

  /// While one exists on a thread, wake() there never delivers inline:
  /// for callers that hold a lock the peer's endpoint could need.
  class NoInlineScope {
   public:
    NoInlineScope();
    ~NoInlineScope();
    NoInlineScope(const NoInlineScope&) = delete;
    NoInlineScope& operator=(const NoInlineScope&) = delete;

   private:
    bool saved_;
  };

 private:
  struct alignas(kCacheLine) Worker {
    std::thread thread;
    std::mutex mutex;
    ReceiveQueue* head = nullptr;  // run list, FIFO
    ReceiveQueue* tail = nullptr;
    std::atomic<bool> sleeping{false};
    // head != nullptr, readable without the mutex: a queue that polls for
    // more frames gives way as soon as another queue waits.
    std::atomic<bool> has_work{false};
    std::atomic<std::uint32_t> wake_seq{0};
  };

  void schedule(ReceiveQueue& q);
  void reap(ReceiveQueue& q);
  void bury(ReceiveQueue& q);
  ReceiveQueue* pop(Worker& worker);
  void run_worker(std::uint32_t id);
  // worker is null when the transmitting thread runs q itself (inline).
  void run_queue(ReceiveQueue& q, Worker* worker);

  const DispatcherConfig config_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::atomic<std::uint32_t> next_worker_{0};
  std::atomic<bool> stopping_{false};
  std::once_flag stopped_;
};

}  // namespace epair
