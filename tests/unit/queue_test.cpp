// SPEC.md "Queues and workers".
#include <gtest/gtest.h>

#include <latch>
#include <map>
#include <set>

#include "test_util.hpp"

namespace epair {
namespace {

using test::make_frame;

// Holds the worker inside input() until released, so queues fill up.
class BlockingEndpoint final : public Endpoint {
 public:
  void input(Interface&, std::span<Frame* const> burst) noexcept override {
    entered_.count_down();
    std::unique_lock lock(mutex_);
    released_cv_.wait(lock, [&] { return released_; });
    delivered_ += burst.size();
    sizes_.push_back(burst.size());
    for (Frame* f : burst) f->release();
  }
  std::vector<std::size_t> sizes() {
    std::lock_guard lock(mutex_);
    return sizes_;
  }
  void wait_entered() { entered_.wait(); }
  void release() {
    std::lock_guard lock(mutex_);
    released_ = true;
    released_cv_.notify_all();
  }
  std::size_t delivered() {
    std::lock_guard lock(mutex_);
    return delivered_;
  }

 private:
  std::latch entered_{1};
  std::mutex mutex_;
  std::condition_variable released_cv_;
  bool released_ = false;
  std::size_t delivered_ = 0;
  std::vector<std::size_t> sizes_;
};

EngineConfig config(std::uint32_t workers = 1, std::uint32_t depth = 4096, std::uint32_t queues = 1) {
  EngineConfig c;
  c.workers = workers;
  c.queue_depth = depth;
  c.queues_per_side = queues;
  c.host_id = 5;
  c.pool.frames = 16384;
  return c;
}

using Pair2 = test::UpPair;

TEST(QueueTest, DefaultDepthIs4096) { EXPECT_EQ(EngineConfig{}.queue_depth, 4096u); }

TEST(QueueTest, FullQueueTailDropsAndCountsOqdrops) {
  Engine engine(config(1, 8));
  Pair2 p(engine);
  auto blocker = std::make_shared<BlockingEndpoint>();
  p.b->attach(blocker);
  // The first frame is taken by the worker, which then blocks in input().
  EXPECT_FALSE(p.a->transmit(make_frame(engine.pool(), 64, test::kUnicast, 0)));
  blocker->wait_entered();
  for (int i = 1; i <= 8; ++i) EXPECT_FALSE(p.a->transmit(make_frame(engine.pool(), 64, test::kUnicast, i)));
  EXPECT_EQ(p.a->counters().oqdrops, 0u);
  EXPECT_FALSE(p.a->transmit(make_frame(engine.pool(), 64, test::kUnicast, 9)));  // still success
  EXPECT_EQ(p.a->counters().oqdrops, 1u);
  EXPECT_EQ(p.a->counters().opackets, 9u);
  EXPECT_EQ(p.b->counters().ipackets, 9u);
  blocker->release();
  ASSERT_TRUE(test::wait_until([&] { return blocker->delivered() == 9; }));
  ASSERT_TRUE(test::wait_until([&] { return engine.pool().available() == engine.pool().config().frames; }));
}

TEST(QueueTest, QueueDepthIsConfigurable) {
  Engine engine(config(1, 100));
  Pair2 p(engine);
  auto blocker = std::make_shared<BlockingEndpoint>();
  p.b->attach(blocker);
  EXPECT_FALSE(p.a->transmit(make_frame(engine.pool())));
  blocker->wait_entered();
  for (int i = 0; i < 110; ++i) EXPECT_FALSE(p.a->transmit(make_frame(engine.pool())));
  EXPECT_EQ(p.a->counters().oqdrops, 10u);
  blocker->release();
}

TEST(QueueTest, WorkerHandsBurstsNoLargerThanConfigured) {
  EngineConfig c = config(1);
  c.burst = 4;
  Engine engine(c);
  Pair2 p(engine);
  auto blocker = std::make_shared<BlockingEndpoint>();
  p.b->attach(blocker);
  EXPECT_FALSE(p.a->transmit(make_frame(engine.pool())));
  blocker->wait_entered();
  for (int i = 0; i < 40; ++i) EXPECT_FALSE(p.a->transmit(make_frame(engine.pool())));
  blocker->release();
  ASSERT_TRUE(test::wait_until([&] { return blocker->delivered() == 41; }));
  const auto sizes = blocker->sizes();
  EXPECT_EQ(sizes.size(), 11u);
  for (auto s : sizes) EXPECT_LE(s, 4u);
}

TEST(QueueTest, BusyPairDoesNotStarveAnotherOnTheSameWorker) {
  EngineConfig c = config(1);
  c.bursts_per_run = 1;
  Engine engine(c);
  Pair2 busy(engine);
  Pair2 quiet(engine);
  std::atomic<bool> quiet_got{false};
  std::atomic<bool> stop{false};
  // The busy pair's endpoint keeps its own queue full by sending back into it.
  CallbackEndpoint::attach_to(*busy.b, [&](Interface&, std::span<Frame* const> burst) {
    for (Frame* f : burst) {
      if (stop.load()) {
        f->release();
      } else {
        (void)busy.a->transmit(f);
      }
    }
  });
  CallbackEndpoint::attach_to(*quiet.b, [&](Interface&, std::span<Frame* const> burst) {
    quiet_got = true;
    for (Frame* f : burst) f->release();
  });
  for (int i = 0; i < 256; ++i) (void)busy.a->transmit(make_frame(engine.pool()));
  EXPECT_FALSE(quiet.a->transmit(make_frame(engine.pool())));
  EXPECT_TRUE(test::wait_until([&] { return quiet_got.load(); }, std::chrono::seconds(2)));
  stop = true;
}

TEST(QueueTest, SeveralQueuesPerSideKeepEachFlowInOrder) {
  Engine engine(config(2, 4096, 4));
  Pair2 p(engine);
  EXPECT_EQ(p.b->queue_count(), 4u);
  auto collector = std::make_shared<test::Collector>();
  p.b->attach(collector);
  constexpr int kFlows = 16, kPerFlow = 200;
  for (int i = 0; i < kPerFlow; ++i) {
    for (int flow = 0; flow < kFlows; ++flow) {
      Frame* f = make_frame(engine.pool(), 64);
      f->meta.flags |= kFrameFlowHash;
      f->meta.flow_hash = static_cast<std::uint32_t>(flow);
      std::uint64_t seq = static_cast<std::uint64_t>(flow) << 32 | static_cast<std::uint64_t>(i);
      std::memcpy(f->data() + 14, &seq, sizeof seq);
      EXPECT_FALSE(p.a->transmit(f));
    }
  }
  ASSERT_TRUE(collector->wait_for(kFlows * kPerFlow));
  std::map<std::uint64_t, std::uint64_t> next;
  for (const auto& r : collector->frames()) {
    const std::uint64_t flow = r.seq >> 32;
    EXPECT_EQ(r.seq & 0xffffffff, next[flow]++) << "flow " << flow;
  }
}

TEST(QueueTest, FlowHashSpreadsFlowsOverQueues) {
  Engine engine(config(2, 4096, 4));
  Pair2 p(engine);
  std::mutex mutex;
  std::set<std::thread::id> threads;
  std::atomic<int> got{0};
  CallbackEndpoint::attach_to(*p.b, [&](Interface&, std::span<Frame* const> burst) {
    {
      std::lock_guard lock(mutex);
      threads.insert(std::this_thread::get_id());
    }
    got += static_cast<int>(burst.size());
    for (Frame* f : burst) f->release();
  });
  for (int flow = 0; flow < 64; ++flow) {
    Frame* f = make_frame(engine.pool(), 64);
    f->meta.flags |= kFrameFlowHash;
    f->meta.flow_hash = static_cast<std::uint32_t>(flow);
    EXPECT_FALSE(p.a->transmit(f));
  }
  ASSERT_TRUE(test::wait_until([&] { return got.load() == 64; }));
  std::lock_guard lock(mutex);
  EXPECT_EQ(threads.size(), 2u) << "4 queues over 2 workers should use both";
}

TEST(QueueTest, FramesComeBackToThePool) {
  Engine engine(config(2));
  Pair2 p(engine);
  auto collector = std::make_shared<test::Collector>();
  p.b->attach(collector);
  const auto before = engine.pool().available();
  for (int i = 0; i < 5000; ++i) (void)p.a->transmit(make_frame(engine.pool()));
  ASSERT_TRUE(collector->wait_for(5000 - p.a->counters().oqdrops));
  EXPECT_TRUE(test::wait_until([&] { return engine.pool().available() == before; }));
}

TEST(QueueTest, OneWorkerPerCpuByDefault) {
  EngineConfig c;
  c.pool.frames = 64;
  c.host_id = 1;
  Engine engine(c);
  Pair2 p(engine);
  std::mutex mutex;
  std::set<std::thread::id> threads;
  auto record = [&](Interface&, std::span<Frame* const> burst) {
    std::lock_guard lock(mutex);
    threads.insert(std::this_thread::get_id());
    for (Frame* f : burst) f->release();
  };
  CallbackEndpoint::attach_to(*p.a, record);
  CallbackEndpoint::attach_to(*p.b, record);
  EXPECT_FALSE(p.a->transmit(make_frame(engine.pool())));
  EXPECT_FALSE(p.b->transmit(make_frame(engine.pool())));
  ASSERT_TRUE(test::wait_until([&] {
    std::lock_guard lock(mutex);
    return !threads.empty();
  }));
  // Side a's and side b's queues go to consecutive workers.
  if (std::thread::hardware_concurrency() > 1) {
    ASSERT_TRUE(test::wait_until([&] {
      std::lock_guard lock(mutex);
      return threads.size() == 2;
    }));
  }
}

TEST(QueueTest, InvalidConfigurationIsRefused) {
  EngineConfig c;
  c.queue_depth = 0;
  EXPECT_THROW(Engine{c}, std::invalid_argument);
  c = {};
  c.queues_per_side = 0;
  EXPECT_THROW(Engine{c}, std::invalid_argument);
  c = {};
  c.burst = 0;
  EXPECT_THROW(Engine{c}, std::invalid_argument);
  c = {};
  c.pool.frames = 0;
  EXPECT_THROW(Engine{c}, std::invalid_argument);
}

}  // namespace
}  // namespace epair

namespace epair {
namespace {

EngineConfig inline_config() {
  EngineConfig c = config(1);
  c.deliver_inline = true;
  return c;
}

TEST(InlineDeliveryTest, IdleQueueIsRunByTheTransmittingThread) {
  Engine engine(inline_config());
  Pair2 p(engine);
  std::thread::id delivered_on;
  std::size_t delivered = 0;
  CallbackEndpoint::attach_to(*p.b, [&](Interface&, std::span<Frame* const> burst) {
    delivered_on = std::this_thread::get_id();
    delivered += burst.size();
    for (Frame* f : burst) f->release();
  });
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(p.a->transmit(make_frame(engine.pool())));
  // Delivered before transmit() returned, on this thread.
  EXPECT_EQ(delivered, 3u);
  EXPECT_EQ(delivered_on, std::this_thread::get_id());
  EXPECT_EQ(p.b->counters().ipackets, 3u);
}

TEST(InlineDeliveryTest, BusyQueueStaysWithItsRunnerAndKeepsOrder) {
  Engine engine(inline_config());
  Pair2 p(engine);
  auto blocker = std::make_shared<BlockingEndpoint>();
  p.b->attach(blocker);
  // The first transmit runs the queue and blocks inside input(); frames sent
  // meanwhile from another thread are queued, not delivered beside it.
  std::thread first([&] { EXPECT_FALSE(p.a->transmit(make_frame(engine.pool()))); });
  blocker->wait_entered();
  for (int i = 0; i < 40; ++i) EXPECT_FALSE(p.a->transmit(make_frame(engine.pool())));
  EXPECT_EQ(blocker->delivered(), 0u);
  blocker->release();
  first.join();
  ASSERT_TRUE(test::wait_until([&] { return blocker->delivered() == 41; }));
}

TEST(InlineDeliveryTest, EndpointMayDestroyThePairFromInput) {
  Engine engine(inline_config());
  Pair2 p(engine);
  std::atomic<bool> destroyed{false};
  CallbackEndpoint::attach_to(*p.b, [&](Interface& ifp, std::span<Frame* const> burst) {
    for (Frame* f : burst) f->release();
    destroyed = static_cast<bool>(engine.destroy(ifp.name()));
  });
  EXPECT_FALSE(p.a->transmit(make_frame(engine.pool())));
  EXPECT_TRUE(destroyed);
  EXPECT_FALSE(engine.find("epair0a"));
  EXPECT_TRUE(test::wait_until([&] { return engine.pool().available() == engine.pool().config().frames; }));
}

TEST(InlineDeliveryTest, TransmitFromInputIsQueuedNotNested) {
  Engine engine(inline_config());
  Pair2 p(engine);
  std::atomic<int> depth{0}, deepest{0};
  std::atomic<std::size_t> at_a{0};
  CallbackEndpoint::attach_to(*p.b, [&](Interface& ifp, std::span<Frame* const> burst) {
    deepest = std::max(deepest.load(), ++depth);
    for (Frame* f : burst) (void)ifp.transmit(f);  // echo back to a
    --depth;
  });
  CallbackEndpoint::attach_to(*p.a, [&](Interface&, std::span<Frame* const> burst) {
    at_a += burst.size();
    for (Frame* f : burst) f->release();
  });
  for (int i = 0; i < 10; ++i) EXPECT_FALSE(p.a->transmit(make_frame(engine.pool())));
  ASSERT_TRUE(test::wait_until([&] { return at_a.load() == 10; }));
  EXPECT_EQ(deepest.load(), 1);
}

}  // namespace
}  // namespace epair
