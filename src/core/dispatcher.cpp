#include "dispatcher.hpp"

#include <pthread.h>
#include <sched.h>

#include <chrono>

#include "cpu_relax.hpp"
#include "epair/interface.hpp"
#include "pair.hpp"

namespace epair {

namespace {

thread_local bool tls_on_worker = false;
thread_local bool tls_no_inline = false;

void backoff(unsigned attempt) {
  if (attempt < 64) {
    cpu_relax();
  } else if (attempt < 256) {
    std::this_thread::yield();
  } else {
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

}  // namespace

Dispatcher::Dispatcher(const DispatcherConfig& config) : config_(config) {
  const std::uint32_t count = config_.workers == 0 ? 1 : config_.workers;
  workers_.reserve(count);
  for (std::uint32_t i = 0; i < count; ++i) workers_.push_back(std::make_unique<Worker>());
  for (std::uint32_t i = 0; i < count; ++i) {
    workers_[i]->thread = std::thread([this, i] { run_worker(i); });
    if (config_.pin_workers) {
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(i % std::thread::hardware_concurrency(), &set);
      pthread_setaffinity_np(workers_[i]->thread.native_handle(), sizeof set, &set);
    }
  }
}

Dispatcher::~Dispatcher() { stop(); }

void Dispatcher::stop() {
  std::call_once(stopped_, [this] {
    stopping_.store(true, std::memory_order_release);
    for (auto& worker : workers_) {
      // release: pairs with the acquire load of wake_seq in run_worker(),
      // which then sees stopping_.
      worker->wake_seq.fetch_add(1, std::memory_order_release);
      worker->wake_seq.notify_one();
    }
    for (auto& worker : workers_) worker->thread.join();
  });
}

std::uint32_t Dispatcher::assign_worker() {
  return next_worker_.fetch_add(1, std::memory_order_relaxed) % static_cast<std::uint32_t>(workers_.size());
}

bool Dispatcher::on_worker_thread() { return tls_on_worker; }

Dispatcher::NoInlineScope::NoInlineScope() : saved_(std::exchange(tls_no_inline, true)) {}
Dispatcher::NoInlineScope::~NoInlineScope() { tls_no_inline = saved_; }

void Dispatcher::wake(ReceiveQueue& q, Pair& pair) {
  // seq_cst read-modify-write, paired with the seq_cst exchange that stores
  // IDLE (or DEAD) on the consumer side. Both act on state_, so one comes
  // first in its modification order: if ours, that exchange synchronises with
  // it and the consumer's re-check sees the frame we just published; if
  // theirs, we read IDLE (or DEAD) here and schedule (or reap). Never neither:
  // that is the lost wakeup of PR 262571. An RMW rather than a fence, because
  // ThreadSanitizer checks RMWs and ignores fences.
  const std::uint32_t state = q.state_.fetch_add(0, std::memory_order_seq_cst);
  if (state == ReceiveQueue::kDead) {
    reap(q);
    return;
  }
  if (state != ReceiveQueue::kIdle) return;
  std::uint32_t expected = ReceiveQueue::kIdle;
  // acquire: pairs with the release store of IDLE, after which the worker no
  // longer touches keepalive_.
  if (!q.state_.compare_exchange_strong(expected, ReceiveQueue::kWaking, std::memory_order_acquire,
                                        std::memory_order_relaxed)) {
    return;
  }
  q.keepalive_ = pair.shared_from_this();
  if (config_.deliver_inline && !tls_on_worker && !tls_no_inline) {
    // Run to completion: this thread owns q (WAKING) and delivers now,
    // sparing a worker's wakeup. Counted as a worker meanwhile, so that a
    // transmit from inside the endpoint is queued instead of nesting, and a
    // destroy from inside does not wait for itself.
    tls_on_worker = true;
    run_queue(q, nullptr);
    tls_on_worker = false;
    return;
  }
  schedule(q);
}

void Dispatcher::reap(ReceiveQueue& q) {
  std::uint32_t expected = ReceiveQueue::kDead;
  // acquire: pairs with the release store of DEAD by the last drainer.
  if (q.state_.compare_exchange_strong(expected, ReceiveQueue::kReaping, std::memory_order_acquire,
                                       std::memory_order_relaxed)) {
    bury(q);
  }
  // Otherwise another thread owns the consumer side and will see our frame.
}

void Dispatcher::bury(ReceiveQueue& q) {
  // The caller owns the consumer side (RUNNING or REAPING).
  for (;;) {
    q.drain();
    // seq_cst exchange: pairs with the RMW in wake(). A frame queued while we
    // drained is either seen below or its transmitter reads DEAD and reaps.
    q.state_.exchange(ReceiveQueue::kDead, std::memory_order_seq_cst);
    if (q.ring_.empty()) return;
    std::uint32_t expected = ReceiveQueue::kDead;
    if (!q.state_.compare_exchange_strong(expected, ReceiveQueue::kReaping, std::memory_order_acquire,
                                          std::memory_order_relaxed)) {
      return;
    }
  }
}

void Dispatcher::schedule(ReceiveQueue& q) {
  Worker& worker = *workers_[q.worker_];
  bool wake_worker;
  {
    std::lock_guard lock(worker.mutex);
    q.next_ = nullptr;
    if (worker.tail != nullptr) {
      worker.tail->next_ = &q;
    } else {
      worker.head = &q;
    }
    worker.tail = &q;
    worker.has_work.store(true, std::memory_order_relaxed);
    wake_worker = worker.sleeping.exchange(false, std::memory_order_relaxed);
  }
  if (wake_worker) {
    worker.wake_seq.fetch_add(1, std::memory_order_release);
    worker.wake_seq.notify_one();
  }
}

ReceiveQueue* Dispatcher::pop(Worker& worker) {
  std::lock_guard lock(worker.mutex);
  ReceiveQueue* q = worker.head;
  if (q != nullptr) {
    worker.head = q->next_;
    if (worker.head == nullptr) {
      worker.tail = nullptr;
      worker.has_work.store(false, std::memory_order_relaxed);
    }
    q->next_ = nullptr;
  }
  return q;
}

void Dispatcher::run_worker(std::uint32_t id) {
  tls_on_worker = true;
  Worker& worker = *workers_[id];
  const auto spin = std::chrono::microseconds(config_.spin_us);
  for (;;) {
    if (ReceiveQueue* q = pop(worker)) {
      run_queue(*q, &worker);
      continue;
    }
    // Poll a little before sleeping: a futex wake costs microseconds, and at
    // high rates the next frame is usually that close.
    const auto deadline = std::chrono::steady_clock::now() + spin;
    ReceiveQueue* found = nullptr;
    while (std::chrono::steady_clock::now() < deadline) {
      for (int i = 0; i < 128; ++i) cpu_relax();
      // Look without the mutex first: producers take it to schedule.
      if (worker.has_work.load(std::memory_order_relaxed) && (found = pop(worker)) != nullptr) break;
    }
    if (found != nullptr) {
      run_queue(*found, &worker);
      continue;
    }
    // acquire: pairs with the release increment in schedule() and ~Dispatcher().
    const std::uint32_t seq = worker.wake_seq.load(std::memory_order_acquire);
    if (stopping_.load(std::memory_order_acquire)) return;
    {
      std::lock_guard lock(worker.mutex);
      if (worker.head != nullptr) continue;
      // Set under the mutex: a producer that queues after this sees it.
      worker.sleeping.store(true, std::memory_order_relaxed);
    }
    worker.wake_seq.wait(seq, std::memory_order_acquire);
    worker.sleeping.store(false, std::memory_order_relaxed);
  }
}

void Dispatcher::run_queue(ReceiveQueue& q, Worker* worker) {
  // Popped from the run list: WAKING, and ours alone until we leave RUNNING.
  q.state_.store(ReceiveQueue::kRunning, std::memory_order_relaxed);
  Interface& ifp = q.owner();
  std::shared_ptr<Endpoint> endpoint = ifp.endpoint();

  Frame* burst[256];
  const std::uint32_t burst_size = std::min<std::uint32_t>(config_.burst, 256);
  bool budget_spent = false;
  // While nothing else waits for this worker, poll the queue a little before
  // giving it up: at high rates the next frame is that close, and a queue that
  // stays RUNNING spares its producers the whole wakeup handshake.
  const auto poll = std::chrono::microseconds(worker != nullptr ? config_.spin_us : 0);
  std::chrono::steady_clock::time_point poll_deadline{};
  for (std::uint32_t round = 0;;) {
    if (q.closed_.load(std::memory_order_acquire)) break;
    if (round == config_.bursts_per_run) {
      budget_spent = true;
      break;
    }
    const std::uint32_t n = q.ring_.dequeue_burst(burst, burst_size);
    if (n != 0) {
      ifp.input_burst({burst, n}, endpoint.get());
      q.count_done(n);
      ++round;
      poll_deadline = {};
      continue;
    }
    if (poll.count() == 0 || worker->has_work.load(std::memory_order_relaxed)) break;
    const auto now = std::chrono::steady_clock::now();
    if (poll_deadline == std::chrono::steady_clock::time_point{}) {
      poll_deadline = now + poll;
    } else if (now >= poll_deadline) {
      break;
    }
    for (int i = 0; i < 128; ++i) cpu_relax();
  }
  endpoint.reset();

  // Hold the pair ourselves: once the state leaves RUNNING a producer may
  // take keepalive_ over.
  std::shared_ptr<Pair> keep = std::move(q.keepalive_);
  q.runs_.fetch_add(1, std::memory_order_release);

  if (q.closed_.load(std::memory_order_acquire)) {
    bury(q);
    return;
  }
  if (budget_spent && !q.ring_.empty()) {
    // Go to the back of the line rather than loop, so one busy pair cannot
    // starve the other queues of this worker.
    q.keepalive_ = std::move(keep);
    q.state_.store(ReceiveQueue::kWaking, std::memory_order_relaxed);
    schedule(q);
    return;
  }
  // seq_cst exchange: pairs with the RMW in wake(). A producer whose RMW read
  // RUNNING left its frame to us: its RMW came first, so we see the frame in
  // the re-check below.
  q.state_.exchange(ReceiveQueue::kIdle, std::memory_order_seq_cst);
  if (!q.ring_.empty()) {
    std::uint32_t expected = ReceiveQueue::kIdle;
    if (q.state_.compare_exchange_strong(expected, ReceiveQueue::kWaking, std::memory_order_acquire,
                                         std::memory_order_relaxed)) {
      q.keepalive_ = std::move(keep);
      schedule(q);
    }
  }
}

void Dispatcher::close(ReceiveQueue& q) {
  q.closed_.store(true, std::memory_order_seq_cst);
  for (unsigned attempt = 0;; ++attempt) {
    std::uint32_t state = q.state_.load(std::memory_order_acquire);
    if (state == ReceiveQueue::kDead || state == ReceiveQueue::kReaping) return;
    if (state == ReceiveQueue::kIdle) {
      // acquire: pairs with the worker's release store of IDLE. REAPING, not
      // DEAD, until drained: DEAD would let a transmitter drain beside us.
      if (q.state_.compare_exchange_strong(state, ReceiveQueue::kReaping, std::memory_order_acquire,
                                           std::memory_order_relaxed)) {
        bury(q);
        return;
      }
      continue;
    }
    // WAKING or RUNNING: the worker that runs q next sees closed_ and drains.
    if (on_worker_thread()) return;
    backoff(attempt);
  }
}

void Dispatcher::quiesce(ReceiveQueue& q) {
  if (on_worker_thread()) return;
  const std::uint64_t runs = q.runs_.load(std::memory_order_acquire);
  for (unsigned attempt = 0;; ++attempt) {
    if (q.state_.load(std::memory_order_acquire) != ReceiveQueue::kRunning) return;
    if (q.runs_.load(std::memory_order_acquire) != runs) return;
    backoff(attempt);
  }
}

}  // namespace epair
