// The kernel data path's programs as the kernel runs them, and Datapath's
// calls that fill their maps, in a network namespace of the test's own.
// Frames are handed to the attached transmit program one at a time
// (BPF_PROG_TEST_RUN), so that each of SPEC.md's transmit steps is seen to
// decide and count exactly, GSO packets by their segments; the e2e
// scenarios (tests/e2e/kernel.sh) send real traffic. A change to an end
// the maps do not hold is a one-line error. Needs root; skipped otherwise.
#include "datapath.hpp"

#include <bpf/bpf.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/pkt_cls.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "linux/private_netns.hpp"
#include "netlink.hpp"
#include "tap_endpoint.hpp"

namespace epair::kernel {
namespace {

constexpr std::uint32_t kMtu = 1500;
const MacAddress kMacB = *MacAddress::parse("02:e0:00:00:00:0b");
const MacAddress kOther = *MacAddress::parse("02:11:22:33:44:55");
const MacAddress kBroadcast = *MacAddress::parse("ff:ff:ff:ff:ff:ff");

// An IPv4 frame to dst: Ethernet, IP and TCP headers (54 bytes), then
// payload bytes.
std::vector<std::uint8_t> frame_to(const MacAddress& dst, std::size_t payload) {
  std::vector<std::uint8_t> frame(54 + payload);
  std::memcpy(frame.data(), dst.bytes.data(), 6);
  frame[6] = 0x02;
  frame[12] = 0x08;
  frame[14] = 0x45;
  const std::size_t ip_length = frame.size() - 14;
  frame[16] = static_cast<std::uint8_t>(ip_length >> 8);
  frame[17] = static_cast<std::uint8_t>(ip_length);
  frame[22] = 64;
  frame[23] = 6;
  frame[46] = 5 << 4;
  return frame;
}

// Two ends' hidden devices, made where the datapath asks, with their
// visible veth peers beside them, and the pair added.
class DatapathPair {
 public:
  static std::unique_ptr<DatapathPair> make(os::RouteSocket& route, int netns_fd) {
    auto pair = std::unique_ptr<DatapathPair>(new DatapathPair);
    pair->netns_fd = netns_fd;
    auto loaded = Datapath::load(netns_fd);
    EXPECT_TRUE(loaded) << loaded.status().message();
    if (!loaded) return nullptr;
    pair->path = std::move(*loaded);
    auto slots = pair->path->take_slots();
    EXPECT_TRUE(slots) << slots.status().message();
    if (!slots) return nullptr;
    pair->slots = *slots;
    const std::uint32_t slot_of[2] = {slots->a, slots->b};
    HiddenEnd* ends[2] = {&pair->a, &pair->b};
    for (int i = 0; i < 2; ++i) {
      const std::string side(1, static_cast<char>('a' + i));
      const HiddenEnd at = pair->path->indexes_of(slot_of[i]);
      Status veth = route.add_veth("hidden" + side, "end" + side, netns_fd, at.veth);
      EXPECT_TRUE(veth) << veth.message();
      auto tap = tap::Device::create("tap" + side, at.tap);
      EXPECT_TRUE(tap) << tap.status().message();
      if (!veth || !tap) return nullptr;
      pair->taps.push_back(std::move(*tap));
      *ends[i] = at;
    }
    Status added = pair->path->add_pair(pair->a, pair->b, kMtu, pair->slots);
    EXPECT_TRUE(added) << added.message();
    if (!added) return nullptr;
    return pair;
  }

  // What the program attached to ifindex returns for frame, as if the
  // device had received it.
  int run(int ifindex, std::vector<std::uint8_t> frame, std::uint32_t gso_size = 0, std::uint32_t gso_segs = 0) {
    auto attached = attached_program(netns_fd, ifindex);
    if (!attached) {
      ADD_FAILURE() << attached.status().message();
      return -1;
    }
    os::UniqueFd program(bpf_prog_get_fd_by_id(attached->id));
    if (!program) {
      ADD_FAILURE() << "program " << attached->id << ": " << std::strerror(errno);
      return -1;
    }
    __sk_buff context{};
    context.ifindex = static_cast<std::uint32_t>(ifindex);
    context.gso_size = gso_size;
    context.gso_segs = gso_segs;
    bpf_test_run_opts opts{};
    opts.sz = sizeof opts;
    opts.data_in = frame.data();
    opts.data_size_in = static_cast<std::uint32_t>(frame.size());
    opts.ctx_in = &context;
    opts.ctx_size_in = sizeof context;
    if (bpf_prog_test_run_opts(program.get(), &opts) != 0) {
      ADD_FAILURE() << "BPF_PROG_TEST_RUN: " << std::strerror(errno);
      return -1;
    }
    return static_cast<int>(opts.retval);
  }

  // The namespace the pair is in, the test's own.
  int netns_fd = -1;
  std::unique_ptr<Datapath> path;
  PairSlots slots;
  HiddenEnd a;
  HiddenEnd b;

 private:
  DatapathPair() = default;

  std::vector<tap::Device> taps;
};

// Runs body with a pair on the kernel path in a namespace of its own.
template <typename Body>
void with_pair(Body body) {
  test::in_private_netns([&] {
    auto route = os::RouteSocket::open();
    ASSERT_TRUE(route) << route.status().message();
    os::UniqueFd here(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(here);
    auto pair = DatapathPair::make(*route, here.get());
    ASSERT_TRUE(pair);
    body(*pair);
  });
}

TEST(DatapathTest, AFrameCrossesOnlyWhenThePeerIsUpAndCountsOnBothEnds) {
  if (::geteuid() != 0) GTEST_SKIP() << "eBPF needs root";
  with_pair([](DatapathPair& pair) {
    ASSERT_TRUE(pair.path->set_mac(pair.b, kMacB));
    EXPECT_EQ(pair.run(pair.a.veth, frame_to(kMacB, 10)), TC_ACT_SHOT) << "the peer is down until told";
    EXPECT_EQ(pair.path->counters(pair.a).oerrors, 1U);

    ASSERT_TRUE(pair.path->set_peer_up(pair.a, true));
    EXPECT_EQ(pair.run(pair.a.veth, frame_to(kMacB, 10)), TC_ACT_REDIRECT);
    EXPECT_EQ(pair.run(pair.a.veth, frame_to(kOther, 10)), TC_ACT_REDIRECT);
    EXPECT_EQ(pair.run(pair.a.veth, frame_to(kBroadcast, 10)), TC_ACT_REDIRECT);
    const Counters a = pair.path->counters(pair.a);
    const Counters b = pair.path->counters(pair.b);
    EXPECT_EQ(a.opackets, 3U);
    EXPECT_EQ(a.obytes, 3U * 64);
    EXPECT_EQ(a.omcasts, 1U);
    EXPECT_EQ(a.oerrors, 1U);
    EXPECT_EQ(b.ipackets, 3U);
    EXPECT_EQ(b.ibytes, 3U * 64);
    EXPECT_EQ(b.imcasts, 1U);
    EXPECT_EQ(a.ipackets + b.opackets + b.oerrors + b.ierrors + a.ierrors, 0U);

    ASSERT_TRUE(pair.path->set_peer_up(pair.a, false));
    EXPECT_EQ(pair.run(pair.a.veth, frame_to(kMacB, 10)), TC_ACT_SHOT);
    EXPECT_EQ(pair.path->counters(pair.a).oerrors, 2U);
    EXPECT_EQ(pair.path->counters(pair.b).ipackets, 3U);
  });
}

TEST(DatapathTest, FramesLongerThanEitherEndsMtuAndEighteenAreDroppedWhereCounted) {
  if (::geteuid() != 0) GTEST_SKIP() << "eBPF needs root";
  with_pair([](DatapathPair& pair) {
    ASSERT_TRUE(pair.path->set_peer_up(pair.a, true));
    EXPECT_EQ(pair.run(pair.a.veth, frame_to(kMacB, kMtu + 18 - 54)), TC_ACT_REDIRECT);
    EXPECT_EQ(pair.run(pair.a.veth, frame_to(kMacB, kMtu + 18 - 54 + 1)), TC_ACT_SHOT);
    EXPECT_EQ(pair.path->counters(pair.a).opackets, 1U);
    EXPECT_EQ(pair.path->counters(pair.a).oerrors, 1U);

    // The receiving end's MTU: Linux would not take the frame in.
    ASSERT_TRUE(pair.path->set_mtu(pair.b, 1000));
    EXPECT_EQ(pair.path->config(pair.a)->peer_max_frame, 1018U);
    EXPECT_EQ(pair.run(pair.a.veth, frame_to(kMacB, 1018 - 54 + 1)), TC_ACT_SHOT);
    EXPECT_EQ(pair.path->counters(pair.b).ierrors, 1U);
    EXPECT_EQ(pair.path->counters(pair.a).oerrors, 1U);
    EXPECT_EQ(pair.path->counters(pair.a).opackets, 1U);
  });
}

TEST(DatapathTest, AGsoPacketCountsAndIsMeasuredAsTheFramesItBecomes) {
  if (::geteuid() != 0) GTEST_SKIP() << "eBPF needs root";
  with_pair([](DatapathPair& pair) {
    ASSERT_TRUE(pair.path->set_peer_up(pair.a, true));
    // Three segments of 1000 bytes: 3054 bytes on the way, 3 frames of
    // 1054 on a wire.
    EXPECT_EQ(pair.run(pair.a.veth, frame_to(kMacB, 3000), 1000, 3), TC_ACT_REDIRECT);
    EXPECT_EQ(pair.path->counters(pair.a).opackets, 3U);
    EXPECT_EQ(pair.path->counters(pair.a).obytes, 3U * 1054);
    EXPECT_EQ(pair.path->counters(pair.b).ipackets, 3U);
    EXPECT_EQ(pair.path->counters(pair.b).ibytes, 3U * 1054);

    // Each segment is longer than the sender's MTU + 18, the packet
    // counts once in oerrors.
    ASSERT_TRUE(pair.path->set_mtu(pair.a, 1000));
    EXPECT_EQ(pair.run(pair.a.veth, frame_to(kMacB, 3000), 1000, 3), TC_ACT_SHOT);
    EXPECT_EQ(pair.path->counters(pair.a).oerrors, 1U);
    EXPECT_EQ(pair.path->counters(pair.a).opackets, 3U);
  });
}

TEST(DatapathTest, AnEndSwitchedToTheEngineSendsEverythingThereUncounted) {
  if (::geteuid() != 0) GTEST_SKIP() << "eBPF needs root";
  with_pair([](DatapathPair& pair) {
    ASSERT_TRUE(pair.path->set_way(pair.a, EPAIR_WAY_ENGINE));
    EXPECT_EQ(pair.path->config(pair.a)->way, EPAIR_WAY_ENGINE);
    // Even with the peer down and the frame too long: the engine applies
    // the steps and counts.
    EXPECT_EQ(pair.run(pair.a.veth, frame_to(kMacB, 3000)), TC_ACT_REDIRECT);
    const Counters a = pair.path->counters(pair.a);
    EXPECT_EQ(a.opackets + a.oerrors + pair.path->counters(pair.b).ipackets, 0U);

    // What the engine writes into b's TAP goes to b.
    EXPECT_EQ(pair.run(pair.b.tap, frame_to(kMacB, 10)), TC_ACT_REDIRECT);
    ASSERT_TRUE(pair.path->set_way(pair.a, EPAIR_WAY_KERNEL));
    ASSERT_TRUE(pair.path->set_peer_up(pair.a, true));
    EXPECT_EQ(pair.run(pair.a.veth, frame_to(kMacB, 10)), TC_ACT_REDIRECT);
    EXPECT_EQ(pair.path->counters(pair.a).opackets, 1U);
  });
}

TEST(DatapathTest, ChangingAnEndTheMapsDoNotHoldIsAOneLineError) {
  if (::geteuid() != 0) GTEST_SKIP() << "eBPF needs root";
  with_pair([](DatapathPair& pair) {
    const HiddenEnd stranger{9999, 0};
    const std::string none = "kernel data path: no end with hidden veth 9999: No such file or directory";
    for (const Status& s : {pair.path->set_mtu(stranger, 1400), pair.path->set_mac(stranger, kMacB),
                            pair.path->set_peer_up(stranger, true), pair.path->set_way(stranger, EPAIR_WAY_ENGINE),
                            pair.path->config(stranger).status()}) {
      EXPECT_EQ(s.value(), ENOENT);
      EXPECT_EQ(s.message(), none);
    }
    EXPECT_EQ(pair.path->counters(stranger).opackets, 0U);

    // b's TAP is not a's: the engine's way into a is not found.
    Status wrong_tap = pair.path->set_mac(HiddenEnd{pair.a.veth, pair.b.veth}, kMacB);
    EXPECT_EQ(wrong_tap.value(), ENOENT);
    EXPECT_EQ(wrong_tap.message(), "kernel data path: from_engine: No such file or directory");
    const MacAddress unset{};
    EXPECT_EQ(std::memcmp(pair.path->config(pair.b)->peer_mac, unset.bytes.data(), 6), 0) << "b's entry changed";

    // With a gone, b's changes that reach a's entry fail, and change nothing.
    const epair_end_config before = *pair.path->config(pair.b);
    pair.path->remove_end(pair.a);
    EXPECT_EQ(pair.path->map_entries().ends, 1U);
    EXPECT_EQ(pair.path->map_entries().from_engine, 1U);
    const std::string gone =
        "kernel data path: no end with hidden veth " + std::to_string(pair.a.veth) + ": No such file or directory";
    for (const Status& s : {pair.path->set_mtu(pair.b, 1400), pair.path->set_mac(pair.b, kMacB)}) {
      EXPECT_EQ(s.value(), ENOENT);
      EXPECT_EQ(s.message(), gone);
    }
    EXPECT_EQ(pair.path->config(pair.b)->max_frame, before.max_frame);
    EXPECT_EQ(pair.path->config(pair.b)->peer_max_frame, before.peer_max_frame);
    EXPECT_EQ(pair.run(pair.a.veth, frame_to(kMacB, 10)), TC_ACT_SHOT) << "a frame of an end gone";
  });
}

TEST(DatapathTest, SlotsRunOutWithAClearErrorAndComeBack) {
  if (::geteuid() != 0) GTEST_SKIP() << "eBPF needs root";
  with_pair([](DatapathPair& pair) {
    std::vector<PairSlots> taken;
    for (;;) {
      auto slots = pair.path->take_slots();
      if (!slots) {
        EXPECT_EQ(slots.status().value(), ENOSPC);
        EXPECT_EQ(slots.status().message(), "kernel data path: no room for another pair");
        break;
      }
      taken.push_back(*slots);
    }
    EXPECT_EQ(taken.size(), EPAIR_KERNEL_MAX_ENDS / 2 - 1);
    pair.path->release_slots(taken.back());
    auto again = pair.path->take_slots();
    ASSERT_TRUE(again) << again.status().message();
    EXPECT_EQ(again->a, taken.back().a);
  });
}

TEST(DatapathTest, AdoptingTakesOverTheRunningProgramsAndCounters) {
  if (::geteuid() != 0) GTEST_SKIP() << "eBPF needs root";
  with_pair([](DatapathPair& pair) {
    ASSERT_TRUE(pair.path->set_peer_up(pair.a, true));
    EXPECT_EQ(pair.run(pair.a.veth, frame_to(kMacB, 10)), TC_ACT_REDIRECT);
    auto adopted = Datapath::adopt(pair.netns_fd, pair.a);
    ASSERT_TRUE(adopted) << adopted.status().message();
    pair.path = std::move(*adopted);
    EXPECT_EQ(pair.path->counters(pair.a).opackets, 1U);
    EXPECT_EQ(pair.path->counters(pair.b).ipackets, 1U);
    EXPECT_EQ(pair.path->config(pair.a)->peer_veth, static_cast<std::uint32_t>(pair.b.veth));
    auto slots = pair.path->take_slots();
    ASSERT_TRUE(slots);
    EXPECT_NE(slots->a, pair.slots.a);
    EXPECT_NE(slots->a, pair.slots.b);
    EXPECT_NE(slots->b, pair.slots.a);
    EXPECT_NE(slots->b, pair.slots.b);

    const HiddenEnd elsewhere{pair.b.veth + 1000, pair.b.tap};
    auto orphan = Datapath::adopt(pair.netns_fd, elsewhere);
    ASSERT_FALSE(orphan);
    EXPECT_EQ(orphan.status().message(), "kernel data path: no epaird program on hidden device " +
                                             std::to_string(elsewhere.veth) + ": " +
                                             std::strerror(orphan.status().value()));
  });
}

}  // namespace
}  // namespace epair::kernel
