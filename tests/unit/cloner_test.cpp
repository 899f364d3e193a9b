// SPEC.md "Cloning and names".
#include <gtest/gtest.h>

#include "test_util.hpp"

namespace epair {
namespace {

class ClonerTest : public ::testing::Test {
 protected:
  static EngineConfig config() {
    EngineConfig c;
    c.workers = 1;
    c.host_id = 42;
    c.pool.frames = 256;
    c.queue_depth = 64;
    return c;
  }
  Engine engine{config()};
};

TEST_F(ClonerTest, WildcardTakesLowestFreeUnitAndReturnsSideA) {
  auto first = engine.create("epair");
  ASSERT_TRUE(first) << first.status().message();
  EXPECT_EQ(*first, "epair0a");
  EXPECT_EQ(*engine.create("epair"), "epair1a");
  ASSERT_TRUE(engine.destroy("epair0a"));
  EXPECT_EQ(*engine.create("epair"), "epair0a");
  EXPECT_EQ(*engine.create("epair"), "epair2a");
}

TEST_F(ClonerTest, SpecificUnitCreatesBothEnds) {
  auto name = engine.create("epair7");
  ASSERT_TRUE(name);
  EXPECT_EQ(*name, "epair7a");
  auto a = engine.find("epair7a");
  auto b = engine.find("epair7b");
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->peer().get(), b.get());
  EXPECT_EQ(b->peer().get(), a.get());
  EXPECT_EQ(a->unit(), 7);
  EXPECT_EQ(b->unit(), 7);
  EXPECT_EQ(Interface::driver_name(), "epair");
  EXPECT_EQ(a->groups(), std::vector<std::string>{"epair"});
  EXPECT_EQ(b->groups(), std::vector<std::string>{"epair"});
  EXPECT_EQ(a->side(), 'a');
  EXPECT_EQ(b->side(), 'b');
}

TEST_F(ClonerTest, WildcardAfterSpecificSkipsTakenUnit) {
  ASSERT_TRUE(engine.create("epair0"));
  EXPECT_EQ(*engine.create("epair"), "epair1a");
}

TEST_F(ClonerTest, UnitInUseIsEexist) {
  ASSERT_TRUE(engine.create("epair3"));
  auto again = engine.create("epair3");
  ASSERT_FALSE(again);
  EXPECT_EQ(again.status().value(), EEXIST);
  EXPECT_EQ(again.status().message(), "interface epair3 already exists");
}

TEST_F(ClonerTest, NameWithSideSuffixIsInvalid) {
  auto r = engine.create("epair0a");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.status().value(), EINVAL);
  EXPECT_EQ(r.status().message(), "epair0a: SIOCIFCREATE2: Invalid argument");
}

TEST_F(ClonerTest, NonDigitUnitIsInvalid) {
  EXPECT_EQ(engine.create("epairx").status().value(), EINVAL);
  EXPECT_EQ(engine.create("epair-1").status().value(), EINVAL);
  EXPECT_EQ(engine.create("epair 1").status().value(), EINVAL);
}

TEST_F(ClonerTest, OtherClonerNameIsInvalid) {
  EXPECT_EQ(engine.create("vlan0").status().value(), EINVAL);
  EXPECT_EQ(engine.create("").status().value(), EINVAL);
  EXPECT_EQ(engine.create("epai").status().value(), EINVAL);
}

TEST_F(ClonerTest, LeadingZeroIsInvalid) {
  EXPECT_EQ(engine.create("epair01").status().value(), EINVAL);
  EXPECT_EQ(engine.create("epair00").status().value(), EINVAL);
  EXPECT_TRUE(engine.create("epair0"));
}

TEST_F(ClonerTest, UnitOverflowIsInvalid) {
  auto r = engine.create("epair99999999999");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.status().value(), EINVAL);
  EXPECT_EQ(engine.create("epair2147483648").status().value(), EINVAL);
}

TEST_F(ClonerTest, UnitAboveMaximumIsEnospc) {
  auto r = engine.create("epair32768");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.status().value(), ENOSPC);
  EXPECT_EQ(r.status().message(), "epair32768: SIOCIFCREATE2: No space left on device");
  EXPECT_TRUE(engine.create("epair32767"));
  EXPECT_TRUE(engine.find("epair32767b"));
}

TEST_F(ClonerTest, NameLeavingNoRoomForSuffixIsEnospc) {
  // "epair1234567890" is 15 characters: no room for "a" within IFNAMSIZ.
  auto r = engine.create("epair1234567890");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.status().value(), ENOSPC);
}

TEST_F(ClonerTest, ExistingEndNameIsEexistAndFreesUnit) {
  ASSERT_TRUE(engine.create_vnet("jail1"));
  // epair0b comes to jail1 from the host; cloning epair0 inside jail1 clashes.
  ASSERT_TRUE(engine.create("epair0"));
  ASSERT_TRUE(engine.move("epair0b", "jail1"));
  auto r = engine.create("epair0", "jail1");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.status().value(), EEXIST);
  EXPECT_EQ(r.status().message(), "interface epair0b already exists");
  // The failed create freed unit 0 of jail1: once the name is gone it works.
  ASSERT_TRUE(engine.reclaim("epair0b", "jail1"));
  EXPECT_EQ(*engine.create("epair0", "jail1"), "epair0a");
}

TEST_F(ClonerTest, ExistingSideANameIsEexist) {
  ASSERT_TRUE(engine.create_vnet("jail1"));
  ASSERT_TRUE(engine.create("epair4"));
  ASSERT_TRUE(engine.move("epair4a", "jail1"));
  auto r = engine.create("epair4", "jail1");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.status().message(), "interface epair4a already exists");
}

TEST_F(ClonerTest, WildcardPassesOverUnitWhoseNameIsTaken) {
  ASSERT_TRUE(engine.create_vnet("jail1"));
  ASSERT_TRUE(engine.create("epair0"));
  ASSERT_TRUE(engine.move("epair0a", "jail1"));
  EXPECT_EQ(*engine.create("epair", "jail1"), "epair1a");
}

TEST_F(ClonerTest, DestroyEitherEndDestroysBoth) {
  ASSERT_TRUE(engine.create("epair0"));
  ASSERT_TRUE(engine.destroy("epair0b"));
  EXPECT_FALSE(engine.find("epair0a"));
  EXPECT_FALSE(engine.find("epair0b"));
  ASSERT_TRUE(engine.create("epair1"));
  ASSERT_TRUE(engine.destroy("epair1a"));
  EXPECT_TRUE(engine.interfaces().empty());
}

// ifconfig epair0b name jail0: the pair, its unit and its counters stay;
// the old name is free, the new one taken; either end destroys both.
TEST_F(ClonerTest, RenamedEndKeepsItsPairAndUnit) {
  ASSERT_TRUE(engine.create("epair0"));
  auto b = engine.find("epair0b");
  std::vector<InterfaceEvent> heard;
  auto subscription = b->subscribe([&](Interface&, InterfaceEvent event) { heard.push_back(event); });
  ASSERT_TRUE(engine.rename("epair0b", "jail0"));
  EXPECT_EQ(b->name(), "jail0");
  EXPECT_EQ(b->side(), 'b');
  EXPECT_EQ(b->unit(), 0);
  EXPECT_EQ(engine.find("jail0"), b);
  EXPECT_EQ(engine.find("epair0b"), nullptr);
  EXPECT_EQ(engine.find("epair0a")->peer(), b);
  EXPECT_EQ(heard, std::vector<InterfaceEvent>{InterfaceEvent::kRenamed});
  EXPECT_EQ(*engine.create("epair"), "epair1a");  // unit 0 stays taken
  EXPECT_EQ(engine.create("epair0").status().value(), EEXIST);
  ASSERT_TRUE(engine.destroy("jail0"));
  EXPECT_EQ(engine.find("epair0a"), nullptr);
  EXPECT_EQ(*engine.create("epair"), "epair0a");
}

TEST_F(ClonerTest, RenameErrors) {
  ASSERT_TRUE(engine.create("epair0"));
  ASSERT_TRUE(engine.create("epair1"));
  Status taken = engine.rename("epair0b", "epair1a");
  EXPECT_EQ(taken.value(), EEXIST);
  EXPECT_EQ(taken.message(), "interface epair1a already exists");
  EXPECT_EQ(engine.rename("epair0b", "").value(), EINVAL);
  EXPECT_EQ(engine.rename("epair0b", "a/b").value(), EINVAL);
  EXPECT_EQ(engine.rename("epair0b", "with space").value(), EINVAL);
  EXPECT_EQ(engine.rename("epair0b", "sixteen-bytes-xx").value(), ENAMETOOLONG);
  EXPECT_EQ(engine.rename("nosuch", "jail0").value(), ENXIO);
  EXPECT_EQ(engine.rename("epair0b", "jail0", "nosuch").value(), ENOENT);
  EXPECT_TRUE(engine.rename("epair0b", "epair0b"));
  EXPECT_NE(engine.find("epair0b"), nullptr);
  // The name a pair was created with is free once renamed: another end
  // may take it.
  ASSERT_TRUE(engine.rename("epair0b", "jail0"));
  ASSERT_TRUE(engine.rename("epair1a", "epair0b"));
  EXPECT_EQ(engine.find("epair0b")->unit(), 1);
}

TEST_F(ClonerTest, DestroyMissingIsEnxio) {
  Status s = engine.destroy("epair9a");
  EXPECT_EQ(s.value(), ENXIO);
  EXPECT_EQ(s.message(), "interface epair9a does not exist");
}

TEST_F(ClonerTest, DestroyTwiceIsEnxio) {
  ASSERT_TRUE(engine.create("epair"));
  ASSERT_TRUE(engine.destroy("epair0a"));
  EXPECT_EQ(engine.destroy("epair0b").value(), ENXIO);
}

TEST_F(ClonerTest, GarbageParamsAreIgnored) {
  const void* garbage = reinterpret_cast<const void*>(static_cast<std::uintptr_t>(0xdeadbeef));
  auto r = engine.create("epair", kHostVnet, garbage);
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, "epair0a");
}

TEST_F(ClonerTest, ListsEpairAmongCloners) {
  auto cloners = engine.cloners();
  EXPECT_NE(std::find(cloners.begin(), cloners.end(), "epair"), cloners.end());
}

TEST_F(ClonerTest, CreateInUnknownVnetIsEnoent) {
  auto r = engine.create("epair", "nowhere");
  EXPECT_EQ(r.status().value(), ENOENT);
  EXPECT_EQ(r.status().message(), "vnet nowhere does not exist");
}

TEST_F(ClonerTest, UnitsArePerVnet) {
  ASSERT_TRUE(engine.create_vnet("jail1"));
  EXPECT_EQ(*engine.create("epair", "jail1"), "epair0a");
  EXPECT_EQ(*engine.create("epair"), "epair0a");
  EXPECT_EQ(engine.find("epair0a", "jail1")->home_vnet_name(), "jail1");
}

TEST_F(ClonerTest, ManyPairsGetDistinctUnits) {
  for (int i = 0; i < 100; ++i) ASSERT_EQ(*engine.create("epair"), "epair" + std::to_string(i) + "a");
  EXPECT_EQ(engine.interfaces().size(), 200u);
}

// What a program that keeps pairs across restarts relies on: the blocks
// hold the counts, the pair goes on from them, and a pair made again with
// them goes on again.
TEST_F(ClonerTest, CountersGoOnInTheBlocksGiven) {
  PairCounters blocks{std::make_shared<CounterBlock>(), std::make_shared<CounterBlock>()};
  blocks.a->tx.opackets = 5;
  blocks.a->tx.obytes = 500;
  blocks.b->enqueued.ipackets = 5;
  blocks.b->rx.ibytes = 500;
  ASSERT_TRUE(engine.create("epair3", blocks));
  auto a = engine.find("epair3a");
  auto b = engine.find("epair3b");
  EXPECT_EQ(a->counters().opackets, 5u);
  EXPECT_EQ(b->counters().ibytes, 500u);
  auto at_b = std::make_shared<test::Collector>();
  ASSERT_TRUE(a->set_up(true));
  ASSERT_TRUE(b->set_up(true));
  b->attach(at_b);
  EXPECT_FALSE(a->transmit(test::make_frame(engine.pool(), 100)));
  ASSERT_TRUE(at_b->wait_for(1));
  ASSERT_TRUE(test::wait_until([&] { return b->counters().ibytes == 600; }));
  EXPECT_EQ(read_counter(blocks.a->tx.opackets), 6u);
  EXPECT_EQ(read_counter(blocks.a->tx.obytes), 600u);
  EXPECT_EQ(read_counter(blocks.b->enqueued.ipackets), 6u);
  EXPECT_EQ(a->counters().ipackets, 0u);

  ASSERT_TRUE(engine.destroy("epair3a"));
  ASSERT_TRUE(engine.create("epair3", blocks));
  EXPECT_EQ(engine.find("epair3a")->counters().opackets, 6u);
  EXPECT_EQ(engine.find("epair3b")->counters().ipackets, 6u);
  EXPECT_EQ(engine.find("epair3b")->counters().ibytes, 600u);
}

TEST_F(ClonerTest, WithoutBlocksCountersStartAtZero) {
  ASSERT_TRUE(engine.create("epair", PairCounters{}));
  EXPECT_EQ(engine.find("epair0a")->counters().opackets, 0u);
  EXPECT_EQ(engine.find("epair0b")->counters().ibytes, 0u);
}

TEST(ClonerUnitTest, ReadsTheUnitAsCreateDoes) {
  EXPECT_EQ(*cloner_unit("epair"), -1);
  EXPECT_EQ(*cloner_unit("epair0"), 0);
  EXPECT_EQ(*cloner_unit("epair32767"), 32767);
  EXPECT_EQ(*cloner_unit("epair40000"), 40000);
  EXPECT_EQ(cloner_unit("epair01").status().message(), "epair01: SIOCIFCREATE2: Invalid argument");
  EXPECT_EQ(cloner_unit("epair99999999999").status().value(), EINVAL);
  EXPECT_EQ(cloner_unit("vlan0").status().value(), EINVAL);
  EXPECT_EQ(cloner_unit("epair0a").status().value(), EINVAL);
}

}  // namespace
}  // namespace epair
