// A bounded ring of pointers after DPDK's rte_ring.
//
// Guarantees:
// - Producers: one (kMultiProducer = false) or many. Consumers: one
//   (kMultiConsumer = false) or many. Using more threads on a side than the
//   template allows is a data race.
// - Never blocks and never allocates after construction. A burst operation
//   moves as many objects as fit (enqueue) or are present (dequeue), possibly
//   none; it never waits for space or for objects.
// - FIFO: objects leave in the order their enqueue reserved slots.
// - Capacity is any value from 1 to 2^31; storage is the next power of two so
//   that indices wrap with a mask.
//
// Each side owns a head (the next slot it reserves) and a tail (the slots it
// has finished with). A multi-threaded side reserves slots with a CAS on its
// head and publishes them in reservation order by waiting for its tail to
// reach its own starting point.
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <stdexcept>
#include <thread>

namespace epair {

inline constexpr std::size_t kCacheLine = 64;

template <class T, bool kMultiProducer, bool kMultiConsumer>
class Ring {
  static_assert(std::is_pointer_v<T>, "Ring holds pointers");

 public:
  /// Throws std::invalid_argument when capacity is 0 or above 2^31.
  explicit Ring(std::uint32_t capacity)
      : capacity_(capacity),
        mask_(std::bit_ceil(capacity) - 1),
        slots_(std::make_unique<T[]>(static_cast<std::size_t>(mask_) + 1)) {
    if (capacity == 0 || capacity > (1u << 31)) throw std::invalid_argument("ring capacity must be 1..2^31");
  }

  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;

  std::uint32_t capacity() const { return capacity_; }

  /// Enqueues up to n objects from objs; returns how many were enqueued.
  std::uint32_t enqueue_burst(T const* objs, std::uint32_t n) {
    std::uint32_t head = producer_.head.load(std::memory_order_relaxed);
    std::uint32_t next;
    for (;;) {
      // acquire: pairs with the release store of consumer_.tail in
      // dequeue_burst(), so the slots counted free are no longer being read.
      const std::uint32_t consumer_tail = consumer_.tail.load(std::memory_order_acquire);
      const std::uint32_t free_slots = capacity_ + consumer_tail - head;
      n = std::min(n, free_slots);
      if (n == 0) return 0;
      next = head + n;
      if constexpr (!kMultiProducer) {
        producer_.head.store(next, std::memory_order_relaxed);
        break;
      } else if (producer_.head.compare_exchange_weak(head, next, std::memory_order_relaxed,
                                                      std::memory_order_relaxed)) {
        break;
      }
    }
    for (std::uint32_t i = 0; i < n; ++i) slots_[(head + i) & mask_] = objs[i];
    if constexpr (kMultiProducer) wait_for_turn(producer_.tail, head);
    // release: publishes the slots to the acquire load of producer_.tail in
    // dequeue_burst().
    producer_.tail.store(next, std::memory_order_release);
    return n;
  }

  /// Dequeues up to n objects into objs; returns how many were dequeued.
  std::uint32_t dequeue_burst(T* objs, std::uint32_t n) {
    std::uint32_t head = consumer_.head.load(std::memory_order_relaxed);
    std::uint32_t next;
    for (;;) {
      // acquire: pairs with the release store of producer_.tail in
      // enqueue_burst(), making the published slots visible.
      const std::uint32_t producer_tail = producer_.tail.load(std::memory_order_acquire);
      n = std::min(n, producer_tail - head);
      if (n == 0) return 0;
      next = head + n;
      if constexpr (!kMultiConsumer) {
        consumer_.head.store(next, std::memory_order_relaxed);
        break;
      } else if (consumer_.head.compare_exchange_weak(head, next, std::memory_order_relaxed,
                                                      std::memory_order_relaxed)) {
        break;
      }
    }
    for (std::uint32_t i = 0; i < n; ++i) objs[i] = slots_[(head + i) & mask_];
    if constexpr (kMultiConsumer) wait_for_turn(consumer_.tail, head);
    // release: hands the slots back to the acquire load of consumer_.tail in
    // enqueue_burst().
    consumer_.tail.store(next, std::memory_order_release);
    return n;
  }

  bool enqueue(T obj) { return enqueue_burst(&obj, 1) == 1; }
  bool dequeue(T& obj) { return dequeue_burst(&obj, 1) == 1; }

  /// Objects published and not yet dequeued. Exact only when both sides are
  /// quiet; otherwise a snapshot for heuristics (and for the wakeup re-check,
  /// where the caller supplies the fence).
  std::uint32_t size() const {
    const std::uint32_t producer_tail = producer_.tail.load(std::memory_order_relaxed);
    const std::uint32_t consumer_head = consumer_.head.load(std::memory_order_relaxed);
    return producer_tail - consumer_head;
  }
  bool empty() const { return size() == 0; }

 private:
  struct alignas(kCacheLine) HeadTail {
    std::atomic<std::uint32_t> head{0};
    std::atomic<std::uint32_t> tail{0};
  };

  // Another thread of the same side reserved earlier slots; publish after it
  // so that the tail only ever covers fully written (or read) slots. acquire:
  // pairs with that thread's release store of the tail, so its slot accesses
  // happen before ours are published and reach the other side with them.
  static void wait_for_turn(std::atomic<std::uint32_t>& tail, std::uint32_t mine) {
    for (unsigned spins = 0; tail.load(std::memory_order_acquire) != mine; ++spins) {
      if (spins > 64) std::this_thread::yield();
    }
  }

  HeadTail producer_;
  HeadTail consumer_;
  const std::uint32_t capacity_;
  const std::uint32_t mask_;
  std::unique_ptr<T[]> slots_;
};

template <class T>
using SpscRing = Ring<T, false, false>;
template <class T>
using MpscRing = Ring<T, true, false>;
template <class T>
using MpmcRing = Ring<T, true, true>;

}  // namespace epair
