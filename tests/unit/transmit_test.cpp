// SPEC.md "Transmit (one end) to input (the other end)", step by step.
#include <gtest/gtest.h>

#include <latch>

#include "test_util.hpp"

namespace epair {
namespace {

using test::make_frame;
using test::PairFixture;

class TransmitTest : public ::testing::Test, protected PairFixture {
 protected:
  bool pool_full() {
    return test::wait_until([&] { return engine.pool().available() == engine.pool().config().frames; });
  }
};

TEST_F(TransmitTest, FrameCrossesToPeer) {
  EXPECT_FALSE(a->transmit(make_frame(engine.pool(), 64, test::kUnicast, 7)));
  ASSERT_TRUE(at_b->wait_for(1));
  auto got = at_b->frames();
  EXPECT_EQ(got[0].seq, 7u);
  EXPECT_EQ(got[0].size, 64u);
  EXPECT_EQ(at_a->count(), 0u);
}

TEST_F(TransmitTest, BothDirectionsWork) {
  EXPECT_FALSE(b->transmit(make_frame(engine.pool())));
  ASSERT_TRUE(at_a->wait_for(1));
}

TEST_F(TransmitTest, LongerThanMtuPlus18IsE2big) {
  EXPECT_EQ(a->transmit(make_frame(engine.pool(), 1500 + 19)), std::errc::argument_list_too_long);
  EXPECT_EQ(a->counters().oerrors, 1u);
  EXPECT_EQ(a->counters().opackets, 0u);
  EXPECT_TRUE(pool_full());
}

TEST_F(TransmitTest, MtuPlus18IsAccepted) {
  EXPECT_FALSE(a->transmit(make_frame(engine.pool(), 1500 + 18)));
  ASSERT_TRUE(at_b->wait_for(1));
}

TEST_F(TransmitTest, MtuCheckUsesSenderMtu) {
  ASSERT_TRUE(b->set_mtu(9000));
  EXPECT_EQ(a->transmit(make_frame(engine.pool(), 1600)), std::errc::argument_list_too_long);
  EXPECT_FALSE(b->transmit(make_frame(engine.pool(), 1600)));
  ASSERT_TRUE(at_a->wait_for(1));
}

// A TSO frame from a TAP end is longer than the MTU; what must fit is each
// segment it stands for: Ethernet + IPv4 + TCP headers + gso_size.
Frame* make_tcp_gso_frame(FramePool& pool, std::uint32_t size, std::uint16_t gso_size,
                          MacAddress dst = test::kUnicast) {
  Frame* frame = make_frame(pool, size, dst);
  frame->meta.flags |= kFrameGso | kFrameCsumPartial;
  frame->meta.gso_type = kGsoTcpV4;
  frame->meta.gso_size = gso_size;
  frame->meta.csum_start = 14 + 20;
  frame->meta.csum_offset = 16;
  frame->data()[14 + 20 + 12] = 5 << 4;  // TCP data offset: 20 bytes
  return frame;
}

TEST_F(TransmitTest, GsoFrameIsMeasuredBySegment) {
  EXPECT_FALSE(a->transmit(make_tcp_gso_frame(engine.pool(), 1900, 1460)));
  EXPECT_TRUE(at_b->wait_for(1));
  EXPECT_EQ(at_b->frames()[0].meta.gso_size, 1460);
}

TEST_F(TransmitTest, GsoSegmentLongerThanMtuPlus18IsE2big) {
  // 14 + 20 + 20 + 1465 = 1519 = MTU + 19.
  EXPECT_EQ(a->transmit(make_tcp_gso_frame(engine.pool(), 1900, 1465)), std::errc::argument_list_too_long);
  EXPECT_EQ(a->counters().oerrors, 1u);
}

// Counted as the kernel data path counts a GSO packet: as the frames it
// becomes, each with the headers. 54 bytes of them and 1800 of payload at
// 700 a segment: 3 frames, 1800 + 3 * 54 bytes.
TEST_F(TransmitTest, GsoFrameCountsAsItsSegments) {
  EXPECT_FALSE(a->transmit(make_tcp_gso_frame(engine.pool(), 54 + 1800, 700)));
  ASSERT_TRUE(at_b->wait_for(1));
  ASSERT_TRUE(test::wait_until([&] { return b->counters().ibytes == 1800 + 3 * 54; }));
  EXPECT_EQ(a->counters().opackets, 3u);
  EXPECT_EQ(a->counters().obytes, 1800u + 3 * 54);
  EXPECT_EQ(b->counters().ipackets, 3u);
}

TEST_F(TransmitTest, GsoFramesInABurstCountAsTheirSegments) {
  std::vector<Frame*> burst{make_tcp_gso_frame(engine.pool(), 54 + 1800, 700), make_frame(engine.pool(), 64),
                            make_tcp_gso_frame(engine.pool(), 54 + 1400, 700, test::kMulticast)};
  EXPECT_EQ(a->transmit_burst(burst), 3u);
  ASSERT_TRUE(at_b->wait_for(3));
  constexpr std::uint64_t kBytes = (1800 + 3 * 54) + 64 + (1400 + 2 * 54);
  ASSERT_TRUE(test::wait_until([&] { return b->counters().ibytes == kBytes; }));
  EXPECT_EQ(a->counters().opackets, 6u);
  EXPECT_EQ(a->counters().obytes, kBytes);
  EXPECT_EQ(a->counters().omcasts, 2u);
  EXPECT_EQ(b->counters().ipackets, 6u);
  EXPECT_EQ(b->counters().imcasts, 2u);
}

TEST_F(TransmitTest, NotUpIsEnetdown) {
  ASSERT_TRUE(a->set_up(false));
  EXPECT_EQ(a->transmit(make_frame(engine.pool())), std::errc::network_down);
  EXPECT_EQ(a->counters().oerrors, 1u);
  EXPECT_TRUE(pool_full());
}

TEST_F(TransmitTest, NotRunningIsEnxio) {
  ASSERT_TRUE(engine.destroy("epair0a"));
  EXPECT_EQ(a->transmit(make_frame(engine.pool())), std::errc::no_such_device_or_address);
  EXPECT_EQ(a->counters().oerrors, 1u);
  EXPECT_TRUE(pool_full());
}

TEST_F(TransmitTest, SizeIsCheckedBeforeState) {
  ASSERT_TRUE(a->set_up(false));
  EXPECT_EQ(a->transmit(make_frame(engine.pool(), 1600)), std::errc::argument_list_too_long);
}

TEST_F(TransmitTest, RuntWithoutEthernetHeaderIsEinval) {
  EXPECT_EQ(a->transmit(make_frame(engine.pool(), 13)), std::errc::invalid_argument);
  EXPECT_EQ(a->counters().oerrors, 1u);
}

TEST_F(TransmitTest, PeerDownDropsCountsOerrorAndSucceeds) {
  ASSERT_TRUE(b->set_up(false));
  EXPECT_FALSE(a->transmit(make_frame(engine.pool())));
  EXPECT_EQ(a->counters().oerrors, 1u);
  EXPECT_EQ(a->counters().opackets, 0u);
  EXPECT_EQ(b->counters().ipackets, 0u);
  EXPECT_TRUE(pool_full());
  EXPECT_EQ(at_b->count(), 0u);
}

TEST_F(TransmitTest, TapSeesFrameBeforePeerChecks) {
  std::atomic<int> seen{0};
  auto tap = a->add_tap([&](const Interface& ifp, std::span<Frame* const> frames, TapDirection dir) {
    EXPECT_EQ(&ifp, a.get());
    EXPECT_EQ(dir, TapDirection::kOut);
    ASSERT_EQ(frames.size(), 1u);
    EXPECT_EQ(frames[0]->size(), 64u);
    ++seen;
  });
  ASSERT_TRUE(b->set_up(false));
  EXPECT_FALSE(a->transmit(make_frame(engine.pool())));
  EXPECT_EQ(seen.load(), 1);
}

TEST_F(TransmitTest, TapDoesNotSeeFramesFailingSenderChecks) {
  std::atomic<int> seen{0};
  auto tap = a->add_tap(
      [&](const Interface&, std::span<Frame* const> frames, TapDirection) { seen += static_cast<int>(frames.size()); });
  ASSERT_TRUE(a->set_up(false));
  EXPECT_TRUE(a->transmit(make_frame(engine.pool())));
  EXPECT_EQ(seen.load(), 0);
}

TEST_F(TransmitTest, PeerTapSeesIncomingFrame) {
  std::atomic<int> seen{0};
  auto tap = b->add_tap([&](const Interface&, std::span<Frame* const> frames, TapDirection dir) {
    if (dir == TapDirection::kIn) seen += static_cast<int>(frames.size());
  });
  EXPECT_FALSE(a->transmit(make_frame(engine.pool())));
  ASSERT_TRUE(at_b->wait_for(1));
  EXPECT_EQ(seen.load(), 1);
}

TEST_F(TransmitTest, RemovedTapSeesNothing) {
  std::atomic<int> seen{0};
  auto tap = a->add_tap(
      [&](const Interface&, std::span<Frame* const> frames, TapDirection) { seen += static_cast<int>(frames.size()); });
  tap.reset();
  EXPECT_FALSE(a->transmit(make_frame(engine.pool())));
  EXPECT_EQ(seen.load(), 0);
}

TEST_F(TransmitTest, ScrubClearsSendTagAndNonPersistentTags) {
  Frame* frame = make_frame(engine.pool());
  frame->meta.flags |= kFrameSendTag;
  frame->meta.send_tag = 0xfeed;
  ASSERT_TRUE(frame->meta.add_tag({1, false, 11}));
  ASSERT_TRUE(frame->meta.add_tag({2, true, 22}));
  ASSERT_TRUE(frame->meta.add_tag({3, false, 33}));
  EXPECT_FALSE(a->transmit(frame));
  ASSERT_TRUE(at_b->wait_for(1));
  const FrameMeta meta = at_b->frames()[0].meta;
  EXPECT_FALSE(meta.flags & kFrameSendTag);
  EXPECT_EQ(meta.send_tag, 0u);
  ASSERT_EQ(meta.tag_count, 1);
  EXPECT_EQ(meta.tags[0].type, 2u);
  EXPECT_EQ(meta.tags[0].value, 22u);
}

TEST_F(TransmitTest, ScrubClearsVlanMetadataWithoutHwTagging) {
  ASSERT_TRUE(a->set_enabled_capabilities(kDefaultCapabilities & ~kCapVlanHwTagging));
  Frame* frame = make_frame(engine.pool());
  frame->meta.flags |= kFrameVlanTag;
  frame->meta.vlan_tci = 42;
  EXPECT_FALSE(a->transmit(frame));
  ASSERT_TRUE(at_b->wait_for(1));
  const FrameMeta meta = at_b->frames()[0].meta;
  EXPECT_FALSE(meta.flags & kFrameVlanTag);
  EXPECT_EQ(meta.vlan_tci, 0);
}

TEST_F(TransmitTest, ScrubKeepsVlanMetadataWithHwTagging) {
  ASSERT_TRUE(a->set_enabled_capabilities(kCapVlanMtu | kCapVlanHwTagging));
  Frame* frame = make_frame(engine.pool());
  frame->meta.flags |= kFrameVlanTag;
  frame->meta.vlan_tci = 42;
  EXPECT_FALSE(a->transmit(frame));
  ASSERT_TRUE(at_b->wait_for(1));
  const FrameMeta meta = at_b->frames()[0].meta;
  EXPECT_TRUE(meta.flags & kFrameVlanTag);
  EXPECT_EQ(meta.vlan_tci, 42);
}

TEST_F(TransmitTest, ScrubSetsReceivingInterface) {
  Frame* frame = make_frame(engine.pool());
  frame->meta.rcvif = a.get();
  EXPECT_FALSE(a->transmit(frame));
  ASSERT_TRUE(at_b->wait_for(1));
  EXPECT_EQ(at_b->frames()[0].meta.rcvif, b.get());
}

TEST_F(TransmitTest, ScrubKeepsOffloadHints) {
  Frame* frame = make_frame(engine.pool());
  frame->meta.flags |= kFrameCsumPartial | kFrameGso;
  frame->meta.csum_start = 34;
  frame->meta.csum_offset = 16;
  frame->meta.gso_size = 1448;
  EXPECT_FALSE(a->transmit(frame));
  ASSERT_TRUE(at_b->wait_for(1));
  const FrameMeta meta = at_b->frames()[0].meta;
  EXPECT_TRUE(meta.flags & kFrameCsumPartial);
  EXPECT_EQ(meta.csum_start, 34);
  EXPECT_EQ(meta.gso_size, 1448);
}

TEST_F(TransmitTest, CountersFollowSpecPlaces) {
  EXPECT_FALSE(a->transmit(make_frame(engine.pool(), 100, test::kUnicast)));
  EXPECT_FALSE(a->transmit(make_frame(engine.pool(), 200, test::kBroadcast)));
  EXPECT_FALSE(a->transmit(make_frame(engine.pool(), 300, test::kMulticast)));
  ASSERT_TRUE(at_b->wait_for(3));
  ASSERT_TRUE(test::wait_until([&] { return b->counters().ibytes == 600; }));
  const auto ca = a->counters();
  const auto cb = b->counters();
  EXPECT_EQ(ca.opackets, 3u);
  EXPECT_EQ(ca.obytes, 600u);
  EXPECT_EQ(ca.omcasts, 2u);
  EXPECT_EQ(ca.ipackets, 0u);
  EXPECT_EQ(cb.ipackets, 3u);
  EXPECT_EQ(cb.ibytes, 600u);
  EXPECT_EQ(cb.imcasts, 2u);
  EXPECT_EQ(cb.opackets, 0u);
}

TEST_F(TransmitTest, BroadcastAndMulticastAreMarked) {
  EXPECT_FALSE(a->transmit(make_frame(engine.pool(), 64, test::kBroadcast)));
  EXPECT_FALSE(a->transmit(make_frame(engine.pool(), 64, test::kMulticast)));
  EXPECT_FALSE(a->transmit(make_frame(engine.pool(), 64, test::kUnicast)));
  ASSERT_TRUE(at_b->wait_for(3));
  auto got = at_b->frames();
  EXPECT_EQ(got[0].meta.flags & (kFrameBroadcast | kFrameMulticast), kFrameBroadcast);
  EXPECT_EQ(got[1].meta.flags & (kFrameBroadcast | kFrameMulticast), kFrameMulticast);
  EXPECT_EQ(got[2].meta.flags & (kFrameBroadcast | kFrameMulticast), 0u);
}

TEST_F(TransmitTest, StaleMulticastMarkIsNotTrusted) {
  Frame* frame = make_frame(engine.pool(), 64, test::kUnicast);
  frame->meta.flags |= kFrameBroadcast | kFrameMulticast;
  EXPECT_FALSE(a->transmit(frame));
  ASSERT_TRUE(at_b->wait_for(1));
  EXPECT_EQ(at_b->frames()[0].meta.flags & (kFrameBroadcast | kFrameMulticast), 0u);
  EXPECT_EQ(a->counters().omcasts, 0u);
}

TEST_F(TransmitTest, FramesArriveInOrder) {
  constexpr int kFrames = 3000;
  for (int i = 0; i < kFrames; ++i) EXPECT_FALSE(a->transmit(make_frame(engine.pool(), 64, test::kUnicast, i)));
  ASSERT_TRUE(at_b->wait_for(kFrames));
  auto got = at_b->frames();
  for (int i = 0; i < kFrames; ++i) ASSERT_EQ(got[i].seq, static_cast<std::uint64_t>(i));
}

TEST_F(TransmitTest, BurstFollowsTheSameSteps) {
  std::vector<Frame*> burst;
  burst.push_back(make_frame(engine.pool(), 64, test::kUnicast, 0));
  burst.push_back(make_frame(engine.pool(), 1600, test::kUnicast, 1));  // E2BIG
  burst.push_back(make_frame(engine.pool(), 64, test::kBroadcast, 2));
  burst.push_back(make_frame(engine.pool(), 10, test::kUnicast, 3));  // runt
  EXPECT_EQ(a->transmit_burst(burst), 2u);
  ASSERT_TRUE(at_b->wait_for(2));
  auto got = at_b->frames();
  EXPECT_EQ(got[0].seq, 0u);
  EXPECT_EQ(got[1].seq, 2u);
  EXPECT_EQ(a->counters().oerrors, 2u);
  EXPECT_EQ(a->counters().opackets, 2u);
  EXPECT_EQ(a->counters().omcasts, 1u);
  EXPECT_EQ(b->counters().ipackets, 2u);
}

TEST_F(TransmitTest, BurstToDownPeerSucceedsAndCountsOerrors) {
  ASSERT_TRUE(b->set_up(false));
  std::vector<Frame*> burst{make_frame(engine.pool()), make_frame(engine.pool())};
  EXPECT_EQ(a->transmit_burst(burst), 2u);
  EXPECT_EQ(a->counters().oerrors, 2u);
  EXPECT_TRUE(pool_full());
}

TEST_F(TransmitTest, NoEndpointCountsIqdrops) {
  b->detach();
  EXPECT_FALSE(a->transmit(make_frame(engine.pool())));
  ASSERT_TRUE(test::wait_until([&] { return b->counters().iqdrops == 1; }));
  EXPECT_EQ(b->counters().ipackets, 1u);
  EXPECT_TRUE(pool_full());
}

TEST_F(TransmitTest, EndpointCanAnswerFromItsCallback) {
  // b echoes every frame back: a stack answering on the worker thread.
  CallbackEndpoint::attach_to(*b, [](Interface& ifp, std::span<Frame* const> burst) {
    for (Frame* frame : burst) (void)ifp.transmit(frame);
  });
  EXPECT_FALSE(a->transmit(make_frame(engine.pool(), 64, test::kUnicast, 5)));
  ASSERT_TRUE(at_a->wait_for(1));
  EXPECT_EQ(at_a->frames()[0].seq, 5u);
}

}  // namespace
}  // namespace epair
