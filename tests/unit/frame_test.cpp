#include <gtest/gtest.h>

#include <set>
#include <thread>

#include "test_util.hpp"

namespace epair {
namespace {

FramePoolConfig small() {
  FramePoolConfig c;
  c.frames = 4;
  c.buffer_size = 256;
  c.headroom = 32;
  return c;
}

TEST(FrameTest, FreshFrameIsEmptyWithHeadroom) {
  FramePool pool(small());
  Frame* f = pool.alloc();
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->size(), 0u);
  EXPECT_EQ(f->headroom(), 32u);
  EXPECT_EQ(f->tailroom(), 224u);
  EXPECT_EQ(&f->pool(), &pool);
  f->release();
}

// A GSO frame is on a wire the segments its payload makes, each with the
// headers: Ethernet, IPv4 and, here, UDP's 8 bytes (42 in all).
TEST(FrameTest, AGsoFrameIsItsSegmentsOnAWire) {
  FramePoolConfig config;
  config.frames = 1;
  config.buffer_size = 4096;
  FramePool pool(config);
  Frame* f = pool.alloc();
  ASSERT_NE(f->append(42 + 2500), nullptr);
  EXPECT_EQ(f->on_wire().frames, 1u);
  EXPECT_EQ(f->on_wire().bytes, 2542u);
  f->meta.flags |= kFrameGso;
  f->meta.gso_type = kGsoUdpL4;
  f->meta.gso_size = 1000;
  f->meta.csum_start = 14 + 20;
  EXPECT_EQ(f->wire_size(), 1042u);
  EXPECT_EQ(f->on_wire().frames, 3u);
  EXPECT_EQ(f->on_wire().bytes, 2542u + 2 * 42);
  // One segment's worth or less: the frame as it is.
  f->meta.gso_size = 2500;
  EXPECT_EQ(f->on_wire().frames, 1u);
  EXPECT_EQ(f->on_wire().bytes, 2542u);
  f->release();
}

TEST(FrameTest, AppendPrependAndTrim) {
  FramePool pool(small());
  Frame* f = pool.alloc();
  ASSERT_NE(f->append(100), nullptr);
  EXPECT_EQ(f->append(200), nullptr);
  EXPECT_EQ(f->size(), 100u);
  std::uint8_t* front = f->prepend(4);
  ASSERT_NE(front, nullptr);
  EXPECT_EQ(front, f->data());
  EXPECT_EQ(f->size(), 104u);
  EXPECT_EQ(f->prepend(64), nullptr);
  EXPECT_TRUE(f->trim_front(4));
  EXPECT_FALSE(f->trim_front(101));
  EXPECT_TRUE(f->resize(10));
  EXPECT_FALSE(f->resize(225));
  const std::uint8_t bytes[3] = {1, 2, 3};
  EXPECT_TRUE(f->assign(bytes));
  EXPECT_EQ(f->size(), 3u);
  EXPECT_EQ(f->data()[2], 3);
  f->release();
}

TEST(FrameTest, PoolExhaustionIsCountedAndRecovers) {
  FramePool pool(small());
  Frame* frames[4];
  ASSERT_EQ(pool.alloc_bulk(frames, 4), 4u);
  EXPECT_EQ(pool.alloc(), nullptr);
  EXPECT_EQ(pool.alloc_failures(), 1u);
  pool.free_bulk(frames, 4);
  EXPECT_EQ(pool.available(), 4u);
  Frame* again[8];
  EXPECT_EQ(pool.alloc_bulk(again, 8), 4u);
  EXPECT_EQ(pool.alloc_failures(), 5u);
  pool.free_bulk(again, 4);
}

TEST(FrameTest, AllocResetsMetadata) {
  FramePool pool(small());
  Frame* frames[4];
  ASSERT_EQ(pool.alloc_bulk(frames, 4), 4u);
  for (Frame* f : frames) {
    f->meta.flags = kFrameVlanTag;
    f->meta.vlan_tci = 7;
    (void)f->meta.add_tag({1, true, 2});
    (void)f->append(10);
  }
  pool.free_bulk(frames, 4);
  ASSERT_EQ(pool.alloc_bulk(frames, 4), 4u);
  for (Frame* f : frames) {
    EXPECT_EQ(f->meta.flags, 0u);
    EXPECT_EQ(f->meta.vlan_tci, 0);
    EXPECT_EQ(f->meta.tag_count, 0);
    EXPECT_EQ(f->size(), 0u);
  }
  pool.free_bulk(frames, 4);
}

TEST(FrameTest, FreeBulkReturnsFramesToTheirOwnPools) {
  FramePool one(small()), two(small());
  Frame* mixed[4] = {one.alloc(), two.alloc(), two.alloc(), one.alloc()};
  one.free_bulk(mixed, 4);
  EXPECT_EQ(one.available(), 4u);
  EXPECT_EQ(two.available(), 4u);
}

TEST(FrameTest, TagsAreBoundedAndNonPersistentOnesRemovable) {
  FrameMeta meta;
  for (std::uint32_t i = 0; i < FrameMeta::kMaxTags; ++i) EXPECT_TRUE(meta.add_tag({i, i % 2 == 0, i}));
  EXPECT_FALSE(meta.add_tag({9, true, 9}));
  meta.delete_nonpersistent_tags();
  ASSERT_EQ(meta.tag_count, 2);
  EXPECT_EQ(meta.tags[0].type, 0u);
  EXPECT_EQ(meta.tags[1].type, 2u);
}

TEST(FrameTest, BadPoolConfigurationIsRefused) {
  FramePoolConfig c = small();
  c.frames = 0;
  EXPECT_THROW(FramePool{c}, std::invalid_argument);
  c = small();
  c.headroom = 250;
  EXPECT_THROW(FramePool{c}, std::invalid_argument);
}

TEST(FrameTest, AFreedBurstIsTheNextAllocated) {
  FramePoolConfig c = small();
  c.frames = 1024;
  FramePool pool(c);
  Frame* first[32];
  ASSERT_EQ(pool.alloc_bulk(first, 32), 32u);
  pool.free_bulk(first, 32);
  Frame* second[32];
  ASSERT_EQ(pool.alloc_bulk(second, 32), 32u);
  std::set<Frame*> a(std::begin(first), std::end(first)), b(std::begin(second), std::end(second));
  EXPECT_EQ(a, b) << "frames still warm in this CPU's cache, not the pool's oldest";
  pool.free_bulk(second, 32);
  EXPECT_EQ(pool.available(), 1024u);
}

TEST(FrameTest, FramesCachedByAThreadThatEndedAreStillAllocated) {
  FramePoolConfig c = small();
  c.frames = 64;
  FramePool pool(c);
  std::thread([&] {
    Frame* frames[64];
    ASSERT_EQ(pool.alloc_bulk(frames, 64), 64u);
    pool.free_bulk(frames, 32);
    pool.free_bulk(frames + 32, 32);
  }).join();
  EXPECT_EQ(pool.available(), 64u) << "cached frames count as available";
  Frame* frames[64];
  EXPECT_EQ(pool.alloc_bulk(frames, 64), 64u) << "taken from the other thread's cache";
  EXPECT_EQ(pool.alloc(), nullptr);
  pool.free_bulk(frames, 64);
}

TEST(FrameTest, ConcurrentAllocAndFreeKeepEveryFrame) {
  FramePoolConfig c = small();
  c.frames = 512;
  FramePool pool(c);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      Frame* frames[16];
      for (int i = 0; i < 20000; ++i) {
        const auto n = pool.alloc_bulk(frames, 16);
        pool.free_bulk(frames, n);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(pool.available(), 512u);
}

}  // namespace
}  // namespace epair

namespace epair {
namespace {

TEST(FrameDeathTest, DoubleFreeAbortsInsteadOfCorruptingThePool) {
  FramePoolConfig c;
  c.frames = 2;
  c.buffer_size = 256;
  c.headroom = 32;
  EXPECT_DEATH(
      {
        FramePool pool(c);
        Frame* f = pool.alloc();
        f->release();
        f->release();
      },
      "freed twice");
}

TEST(FrameDeathTest, AFrameTwiceInOneBurstAborts) {
  EXPECT_DEATH(
      {
        FramePool pool;
        Frame* f = pool.alloc();
        Frame* burst[2];
        burst[0] = burst[1] = f;
        pool.free_bulk(burst, 2);
      },
      "freed twice");
}

}  // namespace
}  // namespace epair
