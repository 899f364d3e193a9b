// A bounded ring of pointers: Dmitry Vyukov's bounded MPMC queue, with bursts.
//
// Guarantees:
// - Producers: one (kMultiProducer = false) or many. Consumers: one
//   (kMultiConsumer = false) or many. Using more threads on a side than the
//   template allows is a data race.
// - Never blocks, never waits for another thread and never allocates after
//   construction. A burst moves as many objects as fit (enqueue) or are ready
//   (dequeue), possibly none. A producer preempted halfway only delays the
//   consumers at its own slot; other producers go on (unlike rte_ring, whose
//   producers wait for each other in turn, which stalls on a 2-core machine
//   with more producers than cores).
// - FIFO: objects leave in the order their slots were reserved.
// - Capacity is any value from 1 to 2^31; storage is the next power of two so
//   that positions wrap with a mask. Below the power of two, a producer also
//   bounds itself by the consumers' position.
//
// Each slot has a sequence number: pos when free for the producer of position
// pos, pos + 1 once that producer published it, and pos + size when the
// consumer of pos handed it back for the next lap.
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>

namespace epair {

inline constexpr std::size_t kCacheLine = 64;

template <class T, bool kMultiProducer, bool kMultiConsumer>
class Ring {
  static_assert(std::is_pointer_v<T>, "Ring holds pointers");

 public:
  /// Throws std::invalid_argument when capacity is 0 or above 2^31.
  explicit Ring(std::uint32_t capacity)
      : capacity_(checked(capacity)),
        mask_(std::bit_ceil(capacity) - 1),
        slots_(std::make_unique<Slot[]>(static_cast<std::size_t>(mask_) + 1)) {
    for (std::uint32_t i = 0; i <= mask_; ++i) slots_[i].sequence.store(i, std::memory_order_relaxed);
  }

  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;

  std::uint32_t capacity() const { return capacity_; }

  /// Enqueues up to n objects from objs; returns how many were enqueued.
  std::uint32_t enqueue_burst(T const* objs, std::uint32_t n) {
    std::uint32_t pos = enqueue_pos_.load(std::memory_order_relaxed);
    std::uint32_t count;
    for (;;) {
      count = 0;
      std::uint32_t limit = n;
      if (capacity_ <= mask_) {
        const std::uint32_t used = pos - dequeue_pos_.load(std::memory_order_relaxed);
        limit = used >= capacity_ ? 0 : std::min(limit, capacity_ - used);
      }
      // acquire: pairs with the consumer's release store of the sequence,
      // so the slot's previous object has been read before we overwrite it.
      while (count < limit && slots_[(pos + count) & mask_].sequence.load(std::memory_order_acquire) == pos + count) {
        ++count;
      }
      if (count == 0) return 0;
      if constexpr (!kMultiProducer) {
        enqueue_pos_.store(pos + count, std::memory_order_relaxed);
        break;
      } else if (enqueue_pos_.compare_exchange_weak(pos, pos + count, std::memory_order_relaxed,
                                                    std::memory_order_relaxed)) {
        break;
      }
    }
    for (std::uint32_t i = 0; i < count; ++i) {
      Slot& slot = slots_[(pos + i) & mask_];
      slot.value = objs[i];
      // release: publishes the value to the acquire load in dequeue_burst().
      slot.sequence.store(pos + i + 1, std::memory_order_release);
    }
    return count;
  }

  /// Dequeues up to n objects into objs; returns how many were dequeued.
  std::uint32_t dequeue_burst(T* objs, std::uint32_t n) {
    std::uint32_t pos = dequeue_pos_.load(std::memory_order_relaxed);
    std::uint32_t count;
    for (;;) {
      count = 0;
      // acquire: pairs with the producer's release store of the sequence.
      while (count < n && slots_[(pos + count) & mask_].sequence.load(std::memory_order_acquire) == pos + count + 1) {
        ++count;
      }
      if (count == 0) return 0;
      if constexpr (!kMultiConsumer) {
        dequeue_pos_.store(pos + count, std::memory_order_relaxed);
        break;
      } else if (dequeue_pos_.compare_exchange_weak(pos, pos + count, std::memory_order_relaxed,
                                                    std::memory_order_relaxed)) {
        break;
      }
    }
    const std::uint32_t lap = mask_ + 1;
    for (std::uint32_t i = 0; i < count; ++i) {
      Slot& slot = slots_[(pos + i) & mask_];
      objs[i] = slot.value;
      // release: hands the slot to the producer of the next lap.
      slot.sequence.store(pos + i + lap, std::memory_order_release);
    }
    return count;
  }

  bool enqueue(T obj) { return enqueue_burst(&obj, 1) == 1; }
  bool dequeue(T& obj) { return dequeue_burst(&obj, 1) == 1; }

  /// Whether the next object for the consumers is published. For a single
  /// consumer this is exact from its own thread; the wakeup re-check relies
  /// on it after its seq_cst exchange of the queue state.
  bool empty() const {
    const std::uint32_t pos = dequeue_pos_.load(std::memory_order_relaxed);
    return slots_[pos & mask_].sequence.load(std::memory_order_acquire) != pos + 1;
  }

  /// Positions producers have reserved so far, wrapping at 2^32: less a
  /// count of objects taken off since construction, what is still on board.
  std::uint32_t reserved() const { return enqueue_pos_.load(std::memory_order_acquire); }

  /// Objects reserved and not yet dequeued: a snapshot when others are busy,
  /// never more than were there (enqueues are read before dequeues).
  std::uint32_t size() const {
    const std::uint32_t enqueued = enqueue_pos_.load(std::memory_order_acquire);
    const std::uint32_t dequeued = dequeue_pos_.load(std::memory_order_acquire);
    const auto difference = static_cast<std::int32_t>(enqueued - dequeued);
    return difference > 0 ? static_cast<std::uint32_t>(difference) : 0;
  }

 private:
  struct Slot {
    std::atomic<std::uint32_t> sequence;
    T value;
  };

  static std::uint32_t checked(std::uint32_t capacity) {
    if (capacity == 0 || capacity > (1u << 31)) throw std::invalid_argument("ring capacity must be 1..2^31");
    return capacity;
  }

  alignas(kCacheLine) std::atomic<std::uint32_t> enqueue_pos_{0};
  alignas(kCacheLine) std::atomic<std::uint32_t> dequeue_pos_{0};
  alignas(kCacheLine) const std::uint32_t capacity_;
  const std::uint32_t mask_;
  std::unique_ptr<Slot[]> slots_;
};

template <class T>
using SpscRing = Ring<T, false, false>;
template <class T>
using MpscRing = Ring<T, true, false>;
template <class T>
using MpmcRing = Ring<T, true, true>;

}  // namespace epair
