// SPEC.md "Moving between network stacks (VNET)".
#include <gtest/gtest.h>

#include "test_util.hpp"

namespace epair {
namespace {

class VnetTest : public ::testing::Test {
 protected:
  VnetTest() : engine(test::PairFixture::small_config()) {
    (void)engine.create("epair");
    (void)engine.create_vnet("jail1");
    (void)engine.create_vnet("jail2");
  }
  Engine engine;
};

TEST_F(VnetTest, MoveAndBack) {
  ASSERT_TRUE(engine.move("epair0b", "jail1"));
  EXPECT_FALSE(engine.find("epair0b"));
  auto b = engine.find("epair0b", "jail1");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->vnet_name(), "jail1");
  EXPECT_EQ(b->home_vnet_name(), "host");
  ASSERT_TRUE(engine.reclaim("epair0b", "jail1"));
  EXPECT_TRUE(engine.find("epair0b"));
  EXPECT_FALSE(engine.find("epair0b", "jail1"));
}

TEST_F(VnetTest, MovedInterfaceArrivesNotUp) {
  auto b = engine.find("epair0b");
  ASSERT_TRUE(b->set_up(true));
  ASSERT_TRUE(b->set_mtu(9000));
  ASSERT_TRUE(engine.move("epair0b", "jail1"));
  EXPECT_FALSE(b->is_up());
  EXPECT_TRUE(b->is_running());
  EXPECT_EQ(b->mtu(), 9000u);
}

TEST_F(VnetTest, MovedInterfaceLeavesItsMulticastGroups) {
  auto b = engine.find("epair0b");
  ASSERT_TRUE(b->add_multicast(test::kMulticast));
  ASSERT_TRUE(engine.move("epair0b", "jail1"));
  EXPECT_TRUE(b->multicast_groups().empty());
}

TEST_F(VnetTest, MovedInterfaceGetsIndexOfItsNewVnet) {
  auto b = engine.find("epair0b");
  const auto old_index = b->index();
  ASSERT_TRUE(engine.move("epair0b", "jail1"));
  EXPECT_EQ(b->index(), 1u);
  EXPECT_NE(b->index(), old_index);
}

TEST_F(VnetTest, TrafficFlowsAcrossVnets) {
  auto a = engine.find("epair0a");
  auto b = engine.find("epair0b");
  ASSERT_TRUE(engine.move("epair0b", "jail1"));
  auto collector = std::make_shared<test::Collector>();
  b->attach(collector);
  ASSERT_TRUE(a->set_up(true));
  EXPECT_FALSE(a->transmit(test::make_frame(engine.pool())));  // b is not UP yet: dropped
  EXPECT_EQ(a->counters().oerrors, 1u);
  ASSERT_TRUE(b->set_up(true));
  EXPECT_FALSE(a->transmit(test::make_frame(engine.pool())));
  ASSERT_TRUE(collector->wait_for(1));
}

TEST_F(VnetTest, MoveToCurrentVnetIsEexist) {
  Status s = engine.move("epair0b", "host");
  EXPECT_EQ(s.value(), EEXIST);
  EXPECT_EQ(s.message(), "epair0b: SIOCSIFVNET: File exists (already in vnet host)");
}

TEST_F(VnetTest, NameClashInTargetIsEexist) {
  ASSERT_TRUE(engine.create("epair0", "jail1"));
  Status s = engine.move("epair0b", "jail1");
  EXPECT_EQ(s.value(), EEXIST);
  EXPECT_TRUE(engine.find("epair0b")) << "a refused move leaves the interface where it was";
}

TEST_F(VnetTest, UnknownTargetIsEnoent) {
  Status s = engine.move("epair0b", "jail9");
  EXPECT_EQ(s.value(), ENOENT);
  EXPECT_EQ(s.message(), "epair0b: SIOCSIFVNET: vnet jail9 does not exist");
}

TEST_F(VnetTest, UnknownInterfaceIsEnxio) {
  EXPECT_EQ(engine.move("epair9a", "jail1").value(), ENXIO);
  EXPECT_EQ(engine.reclaim("epair0b", "jail1").value(), ENXIO);
}

TEST_F(VnetTest, UnknownSourceVnetIsEnoent) { EXPECT_EQ(engine.reclaim("epair0b", "jail9").value(), ENOENT); }

TEST_F(VnetTest, TargetShuttingDownIsEbusy) {
  ASSERT_TRUE(engine.create("epair", "jail1"));
  auto inside = engine.find("epair0a", "jail1");
  Status during;
  auto sub = inside->subscribe([&](Interface&, InterfaceEvent e) {
    if (e == InterfaceEvent::kDestroyed) during = engine.move("epair0b", "jail1");
  });
  ASSERT_TRUE(engine.destroy_vnet("jail1"));
  EXPECT_EQ(during.value(), EBUSY);
  EXPECT_TRUE(engine.find("epair0b"));
}

TEST_F(VnetTest, CreateInVnetShuttingDownIsEbusy) {
  ASSERT_TRUE(engine.create("epair", "jail1"));
  auto inside = engine.find("epair0a", "jail1");
  Status during;
  auto sub = inside->subscribe([&](Interface&, InterfaceEvent e) {
    if (e == InterfaceEvent::kDestroyed) during = engine.create("epair", "jail1").status();
  });
  ASSERT_TRUE(engine.destroy_vnet("jail1"));
  EXPECT_EQ(during.value(), EBUSY);
}

TEST_F(VnetTest, ShutdownGivesBorrowedEndsBackNotUp) {
  auto b = engine.find("epair0b");
  ASSERT_TRUE(engine.move("epair0b", "jail1"));
  ASSERT_TRUE(b->set_up(true));
  ASSERT_TRUE(engine.destroy_vnet("jail1"));
  EXPECT_EQ(engine.find("epair0b"), b);
  EXPECT_FALSE(b->is_up());
  EXPECT_TRUE(b->is_running());
  EXPECT_EQ(engine.vnets(), (std::vector<std::string>{"host", "jail2"}));
}

TEST_F(VnetTest, ShutdownDestroysPairsCreatedInside) {
  ASSERT_TRUE(engine.create("epair", "jail1"));
  ASSERT_TRUE(engine.move("epair0b", "jail2", "jail1"));
  auto outside = engine.find("epair0b", "jail2");
  ASSERT_TRUE(outside);
  ASSERT_TRUE(engine.destroy_vnet("jail1"));
  EXPECT_FALSE(engine.find("epair0b", "jail2"));
  EXPECT_FALSE(outside->is_running());
}

TEST_F(VnetTest, ShutdownDestroysPairThatCannotGoHome) {
  ASSERT_TRUE(engine.move("epair0b", "jail1"));
  // jail2's own epair0b takes the name at home while the host's is away.
  ASSERT_TRUE(engine.create("epair0", "jail2"));
  ASSERT_TRUE(engine.move("epair0b", "host", "jail2"));
  auto borrowed = engine.find("epair0b", "jail1");
  ASSERT_TRUE(engine.destroy_vnet("jail1"));
  EXPECT_FALSE(borrowed->is_running());
  EXPECT_FALSE(engine.find("epair0a"));
}

TEST_F(VnetTest, HostVnetCannotBeDestroyed) { EXPECT_EQ(engine.destroy_vnet("host").value(), EINVAL); }

TEST_F(VnetTest, UnknownVnetCannotBeDestroyed) { EXPECT_EQ(engine.destroy_vnet("jail9").value(), ENOENT); }

TEST_F(VnetTest, DuplicateVnetIsEexist) { EXPECT_EQ(engine.create_vnet("jail1").value(), EEXIST); }

TEST_F(VnetTest, BadVnetNamesAreEinval) {
  EXPECT_EQ(engine.create_vnet("").value(), EINVAL);
  EXPECT_EQ(engine.create_vnet("a/b").value(), EINVAL);
  EXPECT_EQ(engine.create_vnet("a\nb").value(), EINVAL);
  EXPECT_EQ(engine.create_vnet(std::string(256, 'x')).value(), EINVAL);
}

TEST_F(VnetTest, DestroyFromInsideTheVnetItWasMovedTo) {
  ASSERT_TRUE(engine.move("epair0b", "jail1"));
  ASSERT_TRUE(engine.destroy("epair0b", "jail1"));
  EXPECT_FALSE(engine.find("epair0a"));
  EXPECT_TRUE(engine.interfaces("jail1").empty());
  EXPECT_EQ(*engine.create("epair"), "epair0a") << "the unit went back to the host's cloner";
}

TEST_F(VnetTest, ObserversHearMoves) {
  auto b = engine.find("epair0b");
  std::vector<InterfaceEvent> events;
  auto sub = b->subscribe([&](Interface&, InterfaceEvent e) { events.push_back(e); });
  ASSERT_TRUE(engine.move("epair0b", "jail1"));
  EXPECT_EQ(events, std::vector{InterfaceEvent::kMoved});
}

TEST_F(VnetTest, InterfacesListIsPerVnetByIndex) {
  ASSERT_TRUE(engine.create("epair"));
  auto list = engine.interfaces();
  ASSERT_EQ(list.size(), 4u);
  EXPECT_EQ(list[0]->name(), "epair0a");
  EXPECT_EQ(list[3]->name(), "epair1b");
  EXPECT_TRUE(engine.interfaces("jail9").empty());
}

}  // namespace
}  // namespace epair
