// tap::Poller with real TAP devices, each test in a network namespace of its
// own: frames the kernel sends out of a TAP reach the engine whether the
// poller spins or sleeps, an end taken back is read no more, and a deleted
// device is reported once while the other ends go on. Needs root; skipped
// otherwise.
#include <gtest/gtest.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "linux/private_netns.hpp"
#include "netlink.hpp"
#include "tap_endpoint.hpp"
#include "test_util.hpp"

namespace epair::os {
namespace {

using namespace std::chrono_literals;

// Sends frames out of a device from the kernel's side, as the stack would.
class KernelSender {
 public:
  explicit KernelSender(const std::string& ifname) : fd_(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0)) {
    sockaddr_ll addr{};
    addr.sll_family = AF_PACKET;
    addr.sll_ifindex = static_cast<int>(::if_nametoindex(ifname.c_str()));
    bound_ =
        fd_ && addr.sll_ifindex != 0 && ::bind(fd_.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
  }
  bool send(std::uint64_t seq) {
    std::uint8_t frame[64] = {};
    std::memcpy(frame, test::kUnicast.bytes.data(), 6);
    std::memcpy(frame + 6, test::kSource.bytes.data(), 6);
    frame[12] = 0x88;
    frame[13] = 0xb5;
    std::memcpy(frame + 14, &seq, sizeof seq);
    return bound_ && ::send(fd_.get(), frame, sizeof frame, 0) == static_cast<ssize_t>(sizeof frame);
  }

 private:
  UniqueFd fd_;
  bool bound_ = false;
};

// The sequence numbers of the frames KernelSender sent, in arrival order;
// frames the kernel sends on its own are left out.
std::vector<std::uint64_t> sequences_of_test_frames(const test::Collector& collector) {
  std::vector<std::uint64_t> seqs;
  for (const test::Received& frame : collector.frames()) {
    if (frame.bytes.size() >= 14 && frame.bytes[12] == 0x88 && frame.bytes[13] == 0xb5) seqs.push_back(frame.seq);
  }
  return seqs;
}

// A pair whose end a is a TAP read by the poller and whose end b collects.
struct TapPair {
  TapPair(Engine& engine, RouteSocket& route, tap::Poller& poller, const std::string& tap_name) {
    test::UpPair pair(engine);
    b = pair.b;
    b->attach(collector);
    auto device = tap::Device::create(tap_name);
    EXPECT_TRUE(device) << device.status().message();
    if (!device) return;
    EXPECT_TRUE(device->set_carrier(true));
    EXPECT_TRUE(route.set_up(tap_name, true));
    tap = std::make_unique<tap::Endpoint>(pair.a, std::move(*device), engine.pool());
    EXPECT_TRUE(tap->start([this](const std::string&) { ++gone; }, &poller));
    sender = std::make_unique<KernelSender>(tap_name);
  }
  std::shared_ptr<Interface> b;
  std::shared_ptr<test::Collector> collector = std::make_shared<test::Collector>();
  std::unique_ptr<tap::Endpoint> tap;
  std::unique_ptr<KernelSender> sender;
  std::atomic<int> gone{0};
};

EngineConfig small_engine() {
  EngineConfig config;
  config.workers = 1;
  config.pool.frames = 256;
  config.pool.buffer_size = 2048;
  return config;
}

// What each test builds inside its namespace: an engine, a route socket
// and a poller that spins for spin.
struct Lab {
  explicit Lab(std::chrono::microseconds spin) : route(RouteSocket::open()), poller(spin) {
    started = static_cast<bool>(poller.start());
  }
  Engine engine{small_engine()};
  Result<RouteSocket> route;
  tap::Poller poller;
  bool started = false;
};

class TapPollerTest : public ::testing::TestWithParam<std::chrono::microseconds> {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "TAP devices need root";
  }
};

TEST_P(TapPollerTest, KernelFramesReachTheEngine) {
  test::in_private_netns([&] {
    Lab lab(GetParam());
    ASSERT_TRUE(lab.route) << lab.route.status().message();
    ASSERT_TRUE(lab.started);
    Engine& engine = lab.engine;
    RouteSocket& route = *lab.route;
    tap::Poller& poller = lab.poller;
    TapPair one(engine, route, poller, "tp0");
    TapPair two(engine, route, poller, "tp1");
    ASSERT_TRUE(one.tap && two.tap);
    for (std::uint64_t seq = 0; seq < 20; ++seq) {
      ASSERT_TRUE(one.sender->send(seq));
      ASSERT_TRUE(two.sender->send(100 + seq));
      // Gaps longer than a short spin: the poller sleeps and must wake.
      if (seq % 5 == 0) std::this_thread::sleep_for(5ms);
    }
    // Counted by the test's own frames: the kernel's (IPv6 router
    // solicitations, MLD) would let a count of all frames end early.
    EXPECT_TRUE(test::wait_until([&] { return sequences_of_test_frames(*one.collector).size() >= 20; }));
    EXPECT_TRUE(test::wait_until([&] { return sequences_of_test_frames(*two.collector).size() >= 20; }));
    const std::vector<std::uint64_t> seqs = sequences_of_test_frames(*one.collector);
    ASSERT_EQ(seqs.size(), 20u);
    for (std::uint64_t seq = 0; seq < 20; ++seq) EXPECT_EQ(seqs[seq], seq);
    one.tap->stop();
    two.tap->stop();
  });
}

TEST_P(TapPollerTest, AnEndTakenBackIsReadNoMore) {
  test::in_private_netns([&] {
    Lab lab(GetParam());
    ASSERT_TRUE(lab.route) << lab.route.status().message();
    ASSERT_TRUE(lab.started);
    Engine& engine = lab.engine;
    RouteSocket& route = *lab.route;
    tap::Poller& poller = lab.poller;
    TapPair pair(engine, route, poller, "tp0");
    ASSERT_TRUE(pair.tap);
    ASSERT_TRUE(pair.sender->send(1));
    ASSERT_TRUE(pair.collector->wait_for(1));
    pair.tap->stop();
    for (std::uint64_t seq = 2; seq < 10; ++seq) ASSERT_TRUE(pair.sender->send(seq));
    std::this_thread::sleep_for(100ms);
    // Not a count: a frame the kernel sent on its own (IPv6 neighbour
    // discovery, MLD), read just before stop(), may still be crossing.
    for (const test::Received& got : pair.collector->frames()) {
      const bool ours = got.bytes.size() >= 22 && got.bytes[12] == 0x88 && got.bytes[13] == 0xb5;
      EXPECT_FALSE(ours && got.seq >= 2) << "frame " << got.seq << " was read after stop()";
    }
    EXPECT_EQ(pair.gone.load(), 0);
  });
}

TEST_P(TapPollerTest, ADeletedDeviceIsReportedOnceAndTheOthersGoOn) {
  test::in_private_netns([&] {
    Lab lab(GetParam());
    ASSERT_TRUE(lab.route) << lab.route.status().message();
    ASSERT_TRUE(lab.started);
    Engine& engine = lab.engine;
    RouteSocket& route = *lab.route;
    tap::Poller& poller = lab.poller;
    TapPair doomed(engine, route, poller, "tp0");
    TapPair other(engine, route, poller, "tp1");
    ASSERT_TRUE(doomed.tap && other.tap);
    ASSERT_TRUE(route.remove("tp0"));
    EXPECT_TRUE(test::wait_until([&] { return doomed.gone.load() == 1; }));
    std::this_thread::sleep_for(50ms);
    EXPECT_EQ(doomed.gone.load(), 1);
    const std::size_t before = other.collector->count();
    ASSERT_TRUE(other.sender->send(7));
    EXPECT_TRUE(other.collector->wait_for(before + 1));
    EXPECT_EQ(other.gone.load(), 0);
    doomed.tap->stop();
    other.tap->stop();
  });
}

INSTANTIATE_TEST_SUITE_P(Spin, TapPollerTest, ::testing::Values(0us, 1s),
                         [](const auto& info) { return info.param.count() == 0 ? "Sleeping" : "Spinning"; });

}  // namespace
}  // namespace epair::os
