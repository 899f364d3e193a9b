// Where an interface keeps its counters (if_data's, InterfaceCounters):
// plain words, read and written through std::atomic_ref, so that memory the
// program does not own may hold them.
//
// Guarantees:
// - One cache line for each writer: the interface's transmitters (tx), its
//   peer's transmitters counting what they queue for it (enqueued), and its
//   receive side (rx). No counter shares a line with another writer's.
// - A zeroed block is a new interface's. A block that holds counts already
//   goes on from them: a pair made again after a restart, given the blocks
//   it had (Engine::create with PairCounters), keeps its counters.
// - The layout is fixed, for memory shared with another program or one
//   that outlives this one: 3 × 64 bytes, the words in the order below.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "epair/ring.hpp"

namespace epair {

struct CounterBlock {
  struct alignas(kCacheLine) Transmit {
    std::uint64_t opackets = 0;
    std::uint64_t obytes = 0;
    std::uint64_t omcasts = 0;
    std::uint64_t oerrors = 0;
    std::uint64_t oqdrops = 0;
  };
  // Counted by the peer's transmitter at enqueue, as FreeBSD does.
  struct alignas(kCacheLine) Enqueued {
    std::uint64_t ipackets = 0;
  };
  struct alignas(kCacheLine) Receive {
    std::uint64_t ibytes = 0;
    std::uint64_t imcasts = 0;
    std::uint64_t iqdrops = 0;
    std::uint64_t ierrors = 0;
  };

  Transmit tx;
  Enqueued enqueued;
  Receive rx;
};

static_assert(sizeof(CounterBlock) == 3 * kCacheLine);
static_assert(std::atomic_ref<std::uint64_t>::is_always_lock_free);

/// Adds n to a counter of a block; any thread may, at the same time as others.
inline void add_to(std::uint64_t& counter, std::uint64_t n) {
  std::atomic_ref<std::uint64_t>(counter).fetch_add(n, std::memory_order_relaxed);
}

/// A counter of a block as it is now, while others add to it.
inline std::uint64_t read_counter(std::uint64_t& counter) {
  return std::atomic_ref<std::uint64_t>(counter).load(std::memory_order_relaxed);
}

/// Where a new pair's ends keep their counters (Engine::create); a null
/// block: in the interface itself, from zero.
struct PairCounters {
  std::shared_ptr<CounterBlock> a;
  std::shared_ptr<CounterBlock> b;
};

}  // namespace epair
