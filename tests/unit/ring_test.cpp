#include "epair/ring.hpp"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace epair {
namespace {

std::uintptr_t* ptr(std::uintptr_t v) { return reinterpret_cast<std::uintptr_t*>(v); }

TEST(RingTest, HoldsExactlyItsCapacity) {
  SpscRing<std::uintptr_t*> ring(5);
  for (std::uintptr_t i = 1; i <= 5; ++i) EXPECT_TRUE(ring.enqueue(ptr(i)));
  EXPECT_FALSE(ring.enqueue(ptr(6)));
  EXPECT_EQ(ring.size(), 5u);
  std::uintptr_t* out;
  for (std::uintptr_t i = 1; i <= 5; ++i) {
    ASSERT_TRUE(ring.dequeue(out));
    EXPECT_EQ(out, ptr(i));
  }
  EXPECT_FALSE(ring.dequeue(out));
}

TEST(RingTest, BurstsArePartialWhenShort) {
  MpscRing<std::uintptr_t*> ring(4);
  std::uintptr_t* in[6] = {ptr(1), ptr(2), ptr(3), ptr(4), ptr(5), ptr(6)};
  EXPECT_EQ(ring.enqueue_burst(in, 6), 4u);
  std::uintptr_t* out[6];
  EXPECT_EQ(ring.dequeue_burst(out, 6), 4u);
  EXPECT_EQ(out[3], ptr(4));
}

TEST(RingTest, WrapsAroundManyTimes) {
  SpscRing<std::uintptr_t*> ring(3);
  std::uintptr_t* out;
  for (std::uintptr_t i = 1; i < 100000; ++i) {
    ASSERT_TRUE(ring.enqueue(ptr(i)));
    ASSERT_TRUE(ring.dequeue(out));
    ASSERT_EQ(out, ptr(i));
  }
}

// reserved() counts what producers put on, not what is left, and refused
// objects not at all.
TEST(RingTest, ReservedCountsEveryObjectEnqueued) {
  MpscRing<std::uintptr_t*> ring(4);
  std::uintptr_t* in[6] = {ptr(1), ptr(2), ptr(3), ptr(4), ptr(5), ptr(6)};
  std::uintptr_t* out[6];
  EXPECT_EQ(ring.reserved(), 0u);
  EXPECT_EQ(ring.enqueue_burst(in, 3), 3u);
  EXPECT_EQ(ring.dequeue_burst(out, 2), 2u);
  EXPECT_EQ(ring.reserved(), 3u);
  EXPECT_EQ(ring.enqueue_burst(in, 6), 3u);
  EXPECT_EQ(ring.reserved(), 6u);
  EXPECT_EQ(ring.reserved() - 2u, ring.size());
}

TEST(RingTest, ZeroCapacityIsRefused) { EXPECT_THROW(SpscRing<int*>(0), std::invalid_argument); }

TEST(RingTest, ManyProducersOneConsumerLoseNothingAndKeepEachProducersOrder) {
  constexpr int kProducers = 4;
  constexpr std::uintptr_t kPerProducer = 200000;
  MpscRing<std::uintptr_t*> ring(256);
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      for (std::uintptr_t i = 1; i <= kPerProducer;) {
        if (ring.enqueue(ptr(static_cast<std::uintptr_t>(p) << 32 | i))) ++i;
      }
    });
  }
  std::vector<std::uintptr_t> last(kProducers, 0);
  std::uintptr_t received = 0;
  std::uintptr_t* out[32];
  while (received < kProducers * kPerProducer) {
    const auto n = ring.dequeue_burst(out, 32);
    for (std::uint32_t k = 0; k < n; ++k) {
      const auto v = reinterpret_cast<std::uintptr_t>(out[k]);
      const auto p = v >> 32;
      ASSERT_EQ(v & 0xffffffff, last[p] + 1);
      last[p] = v & 0xffffffff;
    }
    received += n;
  }
  for (auto& t : producers) t.join();
}

TEST(RingTest, ManyProducersManyConsumersDeliverEachObjectOnce) {
  constexpr int kThreads = 3;
  constexpr std::uintptr_t kPerProducer = 100000;
  MpmcRing<std::uintptr_t*> ring(128);
  std::vector<std::atomic<int>> seen(kThreads * kPerProducer);
  std::atomic<std::uintptr_t> consumed{0};
  std::vector<std::thread> threads;
  for (int p = 0; p < kThreads; ++p) {
    threads.emplace_back([&, p] {
      for (std::uintptr_t i = 0; i < kPerProducer;) {
        if (ring.enqueue(ptr(p * kPerProducer + i + 1))) ++i;
      }
    });
    threads.emplace_back([&] {
      std::uintptr_t* out[8];
      while (consumed.load() < kThreads * kPerProducer) {
        const auto n = ring.dequeue_burst(out, 8);
        for (std::uint32_t k = 0; k < n; ++k) seen[reinterpret_cast<std::uintptr_t>(out[k]) - 1]++;
        consumed += n;
      }
    });
  }
  for (auto& t : threads) t.join();
  for (auto& s : seen) ASSERT_EQ(s.load(), 1);
}

}  // namespace
}  // namespace epair
