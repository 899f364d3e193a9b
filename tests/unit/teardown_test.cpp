// SPEC.md "Destroy" and the FreeBSD bugs never to repeat (D20868).
#include <gtest/gtest.h>

#include <latch>
#include <thread>

#include "test_util.hpp"

namespace epair {
namespace {

using test::make_frame;

TEST(TeardownTest, DestroyWithFramesQueuedFreesThemAll) {
  EngineConfig c = test::PairFixture::small_config();
  c.workers = 1;
  Engine engine(c);
  auto [a, b] = test::UpPair(engine);
  std::latch entered(1);
  std::atomic<bool> go{false};
  std::atomic<std::size_t> delivered{0};
  CallbackEndpoint::attach_to(*b, [&](Interface&, std::span<Frame* const> burst) {
    if (delivered.fetch_add(burst.size()) == 0) {
      entered.count_down();
      while (!go.load()) std::this_thread::yield();
    }
    for (Frame* f : burst) f->release();
  });
  EXPECT_FALSE(a->transmit(make_frame(engine.pool())));
  entered.wait();
  for (int i = 0; i < 1000; ++i) EXPECT_FALSE(a->transmit(make_frame(engine.pool())));
  std::thread destroyer([&] { EXPECT_TRUE(engine.destroy("epair0a")); });
  // destroy waits for the worker stuck in input(); let it go.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  go = true;
  destroyer.join();
  const std::size_t after_destroy = delivered.load();
  EXPECT_EQ(engine.pool().available(), engine.pool().config().frames) << "every queued frame was freed";
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(delivered.load(), after_destroy) << "nothing is delivered after destroy returned";
  EXPECT_LT(after_destroy, 1001u);
}

// An endpoint that spends 50 ms in input(), so that a caller can act while a
// worker is delivering.
class SlowEndpoint final : public Endpoint {
 public:
  void input(Interface&, std::span<Frame* const> burst) noexcept override {
    in_input = true;
    entered.count_down();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    for (Frame* f : burst) f->release();
    in_input = false;
  }
  std::latch entered{1};
  std::atomic<bool> in_input{false};
};

TEST(TeardownTest, DestroyWaitsForDeliveryInProgress) {
  Engine engine(test::PairFixture::small_config());
  auto [a, b] = test::UpPair(engine);
  auto slow = std::make_shared<SlowEndpoint>();
  b->attach(slow);
  EXPECT_FALSE(a->transmit(make_frame(engine.pool())));
  slow->entered.wait();
  ASSERT_TRUE(engine.destroy("epair0b"));
  EXPECT_FALSE(slow->in_input.load());
}

TEST(TeardownTest, EndpointMayDestroyItsOwnInterface) {
  Engine engine(test::PairFixture::small_config());
  auto [a, b] = test::UpPair(engine);
  std::atomic<int> result{-1};
  CallbackEndpoint::attach_to(*b, [&](Interface& ifp, std::span<Frame* const> burst) {
    for (Frame* f : burst) f->release();
    if (result.load() == -1) result = engine.destroy(ifp.name()).value();
  });
  for (int i = 0; i < 100; ++i) (void)a->transmit(make_frame(engine.pool()));
  ASSERT_TRUE(test::wait_until([&] { return result.load() != -1; }));
  EXPECT_EQ(result.load(), 0);
  EXPECT_FALSE(engine.find("epair0a"));
  EXPECT_TRUE(test::wait_until([&] { return engine.pool().available() == engine.pool().config().frames; }));
}

TEST(TeardownTest, EndpointMayDestroyAnotherPair) {
  Engine engine(test::PairFixture::small_config());
  ASSERT_TRUE(engine.create("epair"));
  ASSERT_TRUE(engine.create("epair"));
  auto a0 = engine.find("epair0a");
  auto b0 = engine.find("epair0b");
  auto a1 = engine.find("epair1a");
  auto b1 = engine.find("epair1b");
  for (auto& ifp : {a0, b0, a1, b1}) ASSERT_TRUE(ifp->set_up(true));
  std::atomic<bool> stop{false};
  // Pair 1 carries traffic on both workers while pair 0's endpoint kills it.
  CallbackEndpoint::attach_to(*b1, [&](Interface&, std::span<Frame* const> burst) {
    for (Frame* f : burst) (void)a1->transmit(f);
  });
  std::atomic<int> result{-1};
  CallbackEndpoint::attach_to(*b0, [&](Interface&, std::span<Frame* const> burst) {
    for (Frame* f : burst) f->release();
    if (result.load() == -1) result = engine.destroy("epair1a").value();
  });
  for (int i = 0; i < 64; ++i) (void)a1->transmit(make_frame(engine.pool()));
  EXPECT_FALSE(a0->transmit(make_frame(engine.pool())));
  ASSERT_TRUE(test::wait_until([&] { return result.load() != -1; }));
  EXPECT_EQ(result.load(), 0);
  EXPECT_TRUE(test::wait_until([&] { return engine.pool().available() == engine.pool().config().frames; }));
}

TEST(TeardownTest, HandleOutlivesEngine) {
  std::shared_ptr<Interface> a;
  std::shared_ptr<FramePool> pool;
  {
    Engine engine(test::PairFixture::small_config());
    ASSERT_TRUE(engine.create("epair"));
    a = engine.find("epair0a");
    pool = engine.shared_pool();
  }
  EXPECT_FALSE(a->is_running());
  EXPECT_EQ(a->transmit(make_frame(*pool)), std::errc::no_such_device_or_address);
  EXPECT_EQ(a->peer(), nullptr);
}

TEST(TeardownTest, DetachWaitsForDelivery) {
  Engine engine(test::PairFixture::small_config());
  auto [a, b] = test::UpPair(engine);
  auto slow = std::make_shared<SlowEndpoint>();
  b->attach(slow);
  EXPECT_FALSE(a->transmit(make_frame(engine.pool())));
  slow->entered.wait();
  b->detach();
  EXPECT_FALSE(slow->in_input.load());
}

TEST(TeardownTest, EngineDestructorDestroysEverything) {
  std::weak_ptr<Interface> weak;
  std::shared_ptr<FramePool> pool;
  {
    Engine engine(test::PairFixture::small_config());
    ASSERT_TRUE(engine.create("epair"));
    ASSERT_TRUE(engine.create_vnet("jail1"));
    ASSERT_TRUE(engine.create("epair", "jail1"));
    auto a = engine.find("epair0a");
    auto b = engine.find("epair0b");
    ASSERT_TRUE(a->set_up(true));
    ASSERT_TRUE(b->set_up(true));
    // An endpoint holding its own interface would be a cycle if teardown
    // kept endpoints.
    CallbackEndpoint::attach_to(*b, [b](Interface&, std::span<Frame* const> burst) {
      for (Frame* f : burst) f->release();
    });
    for (int i = 0; i < 100; ++i) (void)a->transmit(make_frame(engine.pool()));
    weak = b;
    pool = engine.shared_pool();
  }
  EXPECT_TRUE(weak.expired());
  EXPECT_EQ(pool->available(), pool->config().frames);
}

}  // namespace
}  // namespace epair

namespace epair {
namespace {

TEST(TeardownTest, DestroyWhileAMoveHappens) {
  Engine engine(test::PairFixture::small_config());
  ASSERT_TRUE(engine.create_vnet("jail1"));
  for (int round = 0; round < 200; ++round) {
    ASSERT_TRUE(engine.create("epair0"));
    std::atomic<bool> stop{false};
    std::thread mover([&] {
      // Back and forth until the pair is gone; each move may fail with ENXIO
      // once destroy got there first, and must never do anything else.
      while (!stop.load()) {
        Status there = engine.move("epair0b", "jail1");
        Status back = engine.reclaim("epair0b", "jail1");
        for (const Status* s : {&there, &back}) {
          if (!s->ok()) ASSERT_EQ(s->value(), ENXIO) << s->message();
        }
      }
    });
    std::this_thread::sleep_for(std::chrono::microseconds(round % 10 * 20));
    const char* vnet = round % 2 == 0 ? "host" : "jail1";
    // epair0a stays home; epair0b may be on either side at this moment.
    Status destroyed = engine.destroy(round % 3 == 0 ? "epair0a" : "epair0b", vnet);
    if (!destroyed.ok()) {
      ASSERT_EQ(destroyed.value(), ENXIO);
      ASSERT_TRUE(engine.destroy("epair0a"));
    }
    stop = true;
    mover.join();
    EXPECT_TRUE(engine.interfaces().empty());
    EXPECT_TRUE(engine.interfaces("jail1").empty());
  }
  EXPECT_EQ(*engine.create("epair"), "epair0a") << "every round freed its unit";
}

}  // namespace
}  // namespace epair
