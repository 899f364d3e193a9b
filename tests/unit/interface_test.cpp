// SPEC.md "State of a new pair" and "The ifconfig face".
#include <gtest/gtest.h>

#include "test_util.hpp"

namespace epair {
namespace {

class InterfaceTest : public ::testing::Test {
 protected:
  InterfaceTest() {
    EngineConfig config;
    config.workers = 1;
    config.host_id = 0x0000'0001'0000'0002ULL;
    config.pool.frames = 256;
    engine = std::make_unique<Engine>(config);
    (void)engine->create("epair");
    a = engine->find("epair0a");
    b = engine->find("epair0b");
  }
  std::unique_ptr<Engine> engine;
  std::shared_ptr<Interface> a, b;
};

TEST_F(InterfaceTest, NewPairIsRunningButNotUp) {
  for (auto& ifp : {a, b}) {
    const auto flags = ifp->flags();
    EXPECT_TRUE(flags & kFlagBroadcast);
    EXPECT_TRUE(flags & kFlagSimplex);
    EXPECT_TRUE(flags & kFlagMulticast);
    EXPECT_TRUE(flags & kFlagRunning);
    EXPECT_TRUE(flags & kFlagLowerUp);
    EXPECT_FALSE(flags & kFlagUp);
  }
}

TEST_F(InterfaceTest, NewPairLinkIsUpOnBothSides) {
  EXPECT_EQ(a->link_state(), LinkState::kUp);
  EXPECT_EQ(b->link_state(), LinkState::kUp);
  EXPECT_EQ(a->media_status(), "active");
}

TEST_F(InterfaceTest, NewPairHasVlanMtuCapabilityEnabled) {
  EXPECT_TRUE(a->capabilities() & kCapVlanMtu);
  EXPECT_EQ(a->enabled_capabilities(), kDefaultCapabilities);
  EXPECT_EQ(b->enabled_capabilities(), kDefaultCapabilities);
}

TEST_F(InterfaceTest, MediaIs10GbaseTFullDuplex) {
  EXPECT_EQ(Interface::baudrate(), 10'000'000'000ULL);
  EXPECT_EQ(Interface::media(), "Ethernet 10Gbase-T (10Gbase-T <full-duplex>)");
}

TEST_F(InterfaceTest, MtuDefaultsTo1500AndChangesOneSideOnly) {
  EXPECT_EQ(a->mtu(), 1500u);
  ASSERT_TRUE(a->set_mtu(9000));
  EXPECT_EQ(a->mtu(), 9000u);
  EXPECT_EQ(b->mtu(), 1500u);
}

TEST_F(InterfaceTest, MtuAcceptsGenericRange) {
  EXPECT_TRUE(a->set_mtu(72));
  EXPECT_TRUE(a->set_mtu(65535));
}

TEST_F(InterfaceTest, MtuOutOfRangeIsEinval) {
  Status low = a->set_mtu(71);
  EXPECT_EQ(low.value(), EINVAL);
  EXPECT_EQ(low.message(), "epair0a: SIOCSIFMTU: Invalid argument");
  EXPECT_EQ(a->set_mtu(65536).value(), EINVAL);
  EXPECT_EQ(a->mtu(), 1500u);
}

TEST_F(InterfaceTest, UpAndDownChangeOnlyUpFlag) {
  ASSERT_TRUE(a->set_up(true));
  EXPECT_TRUE(a->is_up());
  EXPECT_FALSE(b->is_up());
  ASSERT_TRUE(a->set_up(false));
  EXPECT_FALSE(a->is_up());
  EXPECT_TRUE(a->is_running());
}

TEST_F(InterfaceTest, UserCannotSetDriverFlags) {
  ASSERT_TRUE(a->set_flags(kFlagPromisc));
  EXPECT_TRUE(a->flags() & kFlagPromisc);
  EXPECT_TRUE(a->flags() & kFlagRunning);
  EXPECT_TRUE(a->flags() & kFlagBroadcast);
  ASSERT_TRUE(a->set_flags(0));
  EXPECT_TRUE(a->is_running());
  EXPECT_FALSE(a->flags() & kFlagPromisc);
}

TEST_F(InterfaceTest, SetMacChangesAddress) {
  auto mac = MacAddress::parse("02:aa:bb:cc:dd:ee");
  ASSERT_TRUE(a->set_mac(*mac));
  EXPECT_EQ(a->mac(), *mac);
  EXPECT_NE(b->mac(), *mac);
}

TEST_F(InterfaceTest, SetMulticastOrZeroMacIsEinval) {
  EXPECT_EQ(a->set_mac(test::kMulticast).value(), EINVAL);
  EXPECT_EQ(a->set_mac(MacAddress{}).value(), EINVAL);
}

TEST_F(InterfaceTest, DescriptionIsKeptAndPrinted) {
  ASSERT_TRUE(a->set_description("uplink to jail1"));
  EXPECT_EQ(a->description(), "uplink to jail1");
  EXPECT_NE(format_ifconfig(*a).find("\tdescription: uplink to jail1\n"), std::string::npos);
}

TEST_F(InterfaceTest, OverlongDescriptionIsRefused) {
  EXPECT_EQ(a->set_description(std::string(1025, 'x')).value(), ENAMETOOLONG);
}

TEST_F(InterfaceTest, UnsupportedCapabilityIsEinval) {
  EXPECT_EQ(a->set_enabled_capabilities(0x4).value(), EINVAL);
  EXPECT_EQ(a->set_enabled_capabilities(kDefaultCapabilities | 0x80000).value(), EINVAL);
  EXPECT_EQ(a->enabled_capabilities(), kDefaultCapabilities);
  EXPECT_TRUE(a->set_enabled_capabilities(kCapVlanMtu | kCapVlanHwTagging));
}

// FreeBSD 15: TXCSUM and TXCSUM_IPV6 are the pair's; RXCSUM and
// RXCSUM_IPV6 cannot be turned off; the rest (VLAN_HWTAGGING) are each
// end's own.
TEST_F(InterfaceTest, TransmitChecksumOffloadIsThePairs) {
  ASSERT_TRUE(a->set_enabled_capabilities(kDefaultCapabilities & ~kCapTxCsum));
  EXPECT_EQ(a->enabled_capabilities(), kDefaultCapabilities & ~kCapTxCsum);
  EXPECT_EQ(b->enabled_capabilities(), kDefaultCapabilities & ~kCapTxCsum);
  ASSERT_TRUE(b->set_enabled_capabilities(kCapVlanHwTagging));
  EXPECT_EQ(b->enabled_capabilities(), kFixedCapabilities | kCapVlanHwTagging);
  EXPECT_EQ(a->enabled_capabilities(), kFixedCapabilities | kCapVlanMtu | kCapVlanHwTagging);
  ASSERT_TRUE(a->set_enabled_capabilities(kDefaultCapabilities));
  EXPECT_EQ(b->enabled_capabilities(), kFixedCapabilities | kCapVlanHwTagging | kPairCapabilities);
  EXPECT_NE(format_ifconfig(*b).find("\toptions=600013<RXCSUM,TXCSUM,VLAN_HWTAGGING,RXCSUM_IPV6,TXCSUM_IPV6>\n"),
            std::string::npos);
  ASSERT_TRUE(a->set_enabled_capabilities(kDefaultCapabilities & ~kCapVlanHwTagging));
  EXPECT_TRUE(b->enabled_capabilities() & kCapVlanHwTagging);
}

TEST_F(InterfaceTest, IndexesAreDistinctInVnet) {
  EXPECT_NE(a->index(), 0u);
  EXPECT_NE(a->index(), b->index());
}

TEST_F(InterfaceTest, CountersStartAtZero) {
  const auto c = a->counters();
  EXPECT_EQ(c.ipackets + c.opackets + c.ibytes + c.obytes + c.ierrors + c.oerrors + c.imcasts + c.omcasts + c.iqdrops +
                c.oqdrops,
            0u);
}

TEST_F(InterfaceTest, IfconfigBlockMatchesFreeBsd) {
  ASSERT_TRUE(b->set_up(true));
  ASSERT_TRUE(b->set_mac(*MacAddress::parse("02:1e:66:05:b0:0b")));
  const std::string inet = "\tinet 10.4.6.2 netmask 0xffffff00 broadcast 10.4.6.255";
  EXPECT_EQ(format_ifconfig(*b, std::span(&inet, 1)),
            "epair0b: flags=8863<UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST> metric 0 mtu 1500\n"
            "\toptions=60001b<RXCSUM,TXCSUM,VLAN_MTU,VLAN_HWTAGGING,RXCSUM_IPV6,TXCSUM_IPV6>\n"
            "\tether 02:1e:66:05:b0:0b\n"
            "\tinet 10.4.6.2 netmask 0xffffff00 broadcast 10.4.6.255\n"
            "\tgroups: epair\n"
            "\tmedia: Ethernet 10Gbase-T (10Gbase-T <full-duplex>)\n"
            "\tstatus: active\n");
}

TEST_F(InterfaceTest, FlagsOfNewPairPrintWithoutUp) {
  EXPECT_EQ(format_flags(a->flags()), "8862<BROADCAST,RUNNING,SIMPLEX,MULTICAST>");
}

TEST_F(InterfaceTest, ObserverHearsFlagAndMtuChanges) {
  std::vector<InterfaceEvent> events;
  auto sub = a->subscribe([&](Interface& ifp, InterfaceEvent e) {
    EXPECT_EQ(&ifp, a.get());
    events.push_back(e);
  });
  ASSERT_TRUE(a->set_up(true));
  ASSERT_TRUE(a->set_mtu(1400));
  ASSERT_TRUE(a->set_mtu(1400));  // no change, no event
  EXPECT_EQ(events, (std::vector{InterfaceEvent::kFlags, InterfaceEvent::kMtu}));
  sub.reset();
  ASSERT_TRUE(a->set_up(false));
  EXPECT_EQ(events.size(), 2u);
}

TEST_F(InterfaceTest, ObserverHearsLinkDownAndDestroy) {
  std::vector<InterfaceEvent> events;
  LinkState seen = LinkState::kUnknown;
  auto sub = b->subscribe([&](Interface& ifp, InterfaceEvent e) {
    events.push_back(e);
    if (e == InterfaceEvent::kLinkState) seen = ifp.link_state();
  });
  ASSERT_TRUE(engine->destroy("epair0a"));
  EXPECT_EQ(seen, LinkState::kDown);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back(), InterfaceEvent::kDestroyed);
}

TEST_F(InterfaceTest, ObserverMayCallBackIntoEngine) {
  bool created = false;
  auto sub = a->subscribe([&](Interface&, InterfaceEvent e) {
    if (e == InterfaceEvent::kFlags && !created) created = engine->create("epair5").ok();
  });
  ASSERT_TRUE(a->set_up(true));
  EXPECT_TRUE(created);
}

TEST_F(InterfaceTest, DestroyedInterfaceRefusesChanges) {
  ASSERT_TRUE(engine->destroy("epair0a"));
  EXPECT_FALSE(a->is_running());
  EXPECT_EQ(a->link_state(), LinkState::kDown);
  EXPECT_EQ(a->media_status(), "no carrier");
  EXPECT_EQ(a->set_mtu(1400).value(), ENXIO);
  EXPECT_EQ(a->set_up(true).value(), ENXIO);
  EXPECT_EQ(a->set_mac(test::kSource).value(), ENXIO);
  EXPECT_EQ(a->peer(), nullptr);
}

TEST_F(InterfaceTest, CountersFormatLikeNetstat) {
  InterfaceCounters c;
  c.ipackets = 3;
  c.obytes = 128;
  EXPECT_EQ(format_counters(c),
            "\tinput:  packets 3 bytes 0 mcasts 0 errors 0 drops 0\n"
            "\toutput: packets 0 bytes 128 mcasts 0 errors 0 drops 0\n");
}

}  // namespace
}  // namespace epair

namespace epair {
namespace {

class MulticastTest : public ::testing::Test, protected test::PairFixture {};

TEST_F(MulticastTest, JoinAndLeaveAreCountedPerGroup) {
  std::vector<InterfaceEvent> events;
  auto sub = b->subscribe([&](Interface&, InterfaceEvent e) { events.push_back(e); });
  ASSERT_TRUE(b->add_multicast(test::kMulticast));
  ASSERT_TRUE(b->add_multicast(test::kMulticast));
  EXPECT_EQ(b->multicast_groups(), std::vector{test::kMulticast});
  ASSERT_TRUE(b->delete_multicast(test::kMulticast));
  EXPECT_EQ(b->multicast_groups().size(), 1u) << "one member is left";
  ASSERT_TRUE(b->delete_multicast(test::kMulticast));
  EXPECT_TRUE(b->multicast_groups().empty());
  EXPECT_EQ(events, (std::vector{InterfaceEvent::kMulticast, InterfaceEvent::kMulticast}));
}

TEST_F(MulticastTest, UnicastGroupIsEinval) {
  Status s = b->add_multicast(test::kUnicast);
  EXPECT_EQ(s.value(), EINVAL);
  EXPECT_EQ(s.message(), "epair0b: SIOCADDMULTI: Invalid argument");
}

TEST_F(MulticastTest, LeavingGroupNotJoinedIsEnoent) {
  EXPECT_EQ(b->delete_multicast(test::kMulticast).value(), ENOENT);
}

TEST_F(MulticastTest, NoFilteringWhateverTheMemberships) {
  ASSERT_TRUE(b->add_multicast(test::kMulticast));
  const MacAddress other{{0x01, 0x00, 0x5e, 0x7f, 0x00, 0x09}};
  EXPECT_FALSE(a->transmit(test::make_frame(engine.pool(), 64, other)));
  EXPECT_FALSE(a->transmit(test::make_frame(engine.pool(), 64, test::kMulticast)));
  ASSERT_TRUE(at_b->wait_for(2));
}

TEST_F(MulticastTest, DestroyedInterfaceRefusesGroups) {
  ASSERT_TRUE(engine.destroy("epair0a"));
  EXPECT_EQ(b->add_multicast(test::kMulticast).value(), ENXIO);
  EXPECT_EQ(b->delete_multicast(test::kMulticast).value(), ENXIO);
}

}  // namespace
}  // namespace epair

namespace epair {
namespace {

class CarrierTest : public ::testing::Test {
 protected:
  CarrierTest() {
    EngineConfig config = test::PairFixture::small_config();
    config.carrier_follows_peer = true;
    engine = std::make_unique<Engine>(config);
    (void)engine->create("epair");
    (void)engine->create_vnet("jail1");
    a = engine->find("epair0a");
    b = engine->find("epair0b");
  }
  std::unique_ptr<Engine> engine;
  std::shared_ptr<Interface> a, b;
};

TEST_F(CarrierTest, NewPairHasNoCarrierUntilPeerIsUp) {
  EXPECT_EQ(a->link_state(), LinkState::kDown);
  EXPECT_FALSE(a->flags() & kFlagLowerUp);
  EXPECT_EQ(a->media_status(), "no carrier");
  ASSERT_TRUE(b->set_up(true));
  EXPECT_EQ(a->link_state(), LinkState::kUp);
  EXPECT_TRUE(a->flags() & kFlagLowerUp);
  EXPECT_EQ(b->link_state(), LinkState::kDown) << "a is still down";
}

TEST_F(CarrierTest, PeerGoingDownDropsCarrierWithAnEvent) {
  ASSERT_TRUE(a->set_up(true));
  ASSERT_TRUE(b->set_up(true));
  std::vector<InterfaceEvent> events;
  auto sub = a->subscribe([&](Interface&, InterfaceEvent e) { events.push_back(e); });
  ASSERT_TRUE(b->set_up(false));
  EXPECT_EQ(a->link_state(), LinkState::kDown);
  EXPECT_EQ(events, std::vector{InterfaceEvent::kLinkState});
  ASSERT_TRUE(b->set_flags(kFlagPromisc));  // UP unchanged: no carrier change
  EXPECT_EQ(events.size(), 1u);
}

TEST_F(CarrierTest, PeerMovedAwayDropsCarrier) {
  ASSERT_TRUE(a->set_up(true));
  ASSERT_TRUE(b->set_up(true));
  ASSERT_TRUE(engine->move("epair0b", "jail1"));
  EXPECT_EQ(a->link_state(), LinkState::kDown);
  ASSERT_TRUE(b->set_up(true));
  EXPECT_EQ(a->link_state(), LinkState::kUp);
}

TEST_F(CarrierTest, EndpointLinkDownDropsCarrierOnBothEnds) {
  ASSERT_TRUE(a->set_up(true));
  ASSERT_TRUE(b->set_up(true));
  std::vector<InterfaceEvent> events;
  auto sub = a->subscribe([&](Interface&, InterfaceEvent e) { events.push_back(e); });
  b->set_endpoint_link(false);
  EXPECT_EQ(a->link_state(), LinkState::kDown);
  EXPECT_EQ(b->link_state(), LinkState::kDown);
  EXPECT_EQ(events, std::vector{InterfaceEvent::kLinkState});
  b->set_endpoint_link(false);  // no change, no event
  EXPECT_EQ(events.size(), 1u);
  ASSERT_TRUE(a->set_up(false));
  ASSERT_TRUE(a->set_up(true));
  EXPECT_EQ(a->link_state(), LinkState::kDown) << "the peer's stack is still gone";
  b->set_endpoint_link(true);
  EXPECT_EQ(a->link_state(), LinkState::kUp);
  EXPECT_EQ(b->link_state(), LinkState::kUp);
}

TEST_F(CarrierTest, PeerDestroyedDropsCarrier) {
  ASSERT_TRUE(a->set_up(true));
  ASSERT_TRUE(b->set_up(true));
  ASSERT_TRUE(engine->destroy("epair0b"));
  EXPECT_EQ(a->link_state(), LinkState::kDown);
  EXPECT_FALSE(a->flags() & kFlagLowerUp);
}

TEST_F(CarrierTest, AddingAndRemovingACaptureTapIsAnEvent) {
  std::vector<InterfaceEvent> events;
  auto sub = a->subscribe([&](Interface&, InterfaceEvent e) { events.push_back(e); });
  EXPECT_FALSE(a->tapped());
  auto tap = a->add_tap([](const Interface&, std::span<Frame* const>, TapDirection) {});
  EXPECT_TRUE(a->tapped());
  EXPECT_FALSE(b->tapped());
  EXPECT_EQ(events, std::vector{InterfaceEvent::kTaps});
  tap.reset();
  EXPECT_FALSE(a->tapped());
  EXPECT_EQ(events, (std::vector{InterfaceEvent::kTaps, InterfaceEvent::kTaps}));
}

}  // namespace
}  // namespace epair
