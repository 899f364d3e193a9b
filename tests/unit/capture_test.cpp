// Capture: directions, snap length, filters, a full ring that drops capture
// frames and never wire frames, detach, and the reader's wakeup.
#include <gtest/gtest.h>

#include <thread>

#include "test_util.hpp"

namespace epair {
namespace {

using namespace std::chrono_literals;
using test::make_frame;

constexpr std::uint32_t kMaxFrame = 2048;

// Keeps frames whose payload starts with an even sequence number.
class EvenFilter final : public CaptureFilter {
 public:
  bool match(std::span<const std::uint8_t> data, std::uint32_t) const noexcept override {
    std::uint64_t seq = 0;
    if (data.size() < 22) return false;
    std::memcpy(&seq, data.data() + 14, sizeof seq);
    return seq % 2 == 0;
  }
};

std::vector<CapturedFrame> drain(Capture& capture) {
  std::vector<CapturedFrame> out;
  CapturedFrame* frames[64];
  while (std::size_t n = capture.read(frames)) {
    for (std::size_t i = 0; i < n; ++i) out.push_back(*frames[i]);
    capture.release({frames, n});
  }
  return out;
}

std::uint64_t seq_of(const CapturedFrame& frame) {
  std::uint64_t seq = 0;
  std::memcpy(&seq, frame.data + 14, sizeof seq);
  return seq;
}

TEST(Capture, SeesBothDirectionsOfAnEnd) {
  test::PairFixture f;
  Capture capture({}, kMaxFrame);
  EXPECT_EQ(capture.attach(*f.a), 0u);
  ASSERT_FALSE(f.a->transmit(make_frame(f.engine.pool(), 100, test::kUnicast, 1)));
  ASSERT_FALSE(f.b->transmit(make_frame(f.engine.pool(), 200, test::kUnicast, 2)));
  ASSERT_TRUE(f.at_a->wait_for(1));
  ASSERT_TRUE(f.at_b->wait_for(1));
  ASSERT_TRUE(test::wait_until([&] { return capture.counters().matched == 2; }));
  auto frames = drain(capture);
  ASSERT_EQ(frames.size(), 2u);
  std::sort(frames.begin(), frames.end(), [](auto& x, auto& y) { return seq_of(x) < seq_of(y); });
  EXPECT_EQ(frames[0].direction, TapDirection::kOut);
  EXPECT_EQ(frames[0].wire_length, 100u);
  EXPECT_EQ(frames[0].length, 100u);
  EXPECT_EQ(frames[1].direction, TapDirection::kIn);
  EXPECT_EQ(frames[1].wire_length, 200u);
  EXPECT_GT(frames[0].timestamp_ns, 1'600'000'000'000'000'000u);
  EXPECT_EQ(capture.counters().dropped, 0u);
}

TEST(Capture, OneDirectionOnly) {
  test::PairFixture f;
  CaptureConfig config;
  config.out = false;
  Capture capture(config, kMaxFrame);
  capture.attach(*f.a);
  ASSERT_FALSE(f.a->transmit(make_frame(f.engine.pool(), 64, test::kUnicast, 1)));
  ASSERT_FALSE(f.b->transmit(make_frame(f.engine.pool(), 64, test::kUnicast, 2)));
  ASSERT_TRUE(f.at_a->wait_for(1));
  ASSERT_TRUE(f.at_b->wait_for(1));
  auto frames = drain(capture);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].direction, TapDirection::kIn);
  EXPECT_EQ(seq_of(frames[0]), 2u);
}

TEST(Capture, SnapLengthCutsTheCopyNotTheWireLength) {
  test::PairFixture f;
  CaptureConfig config;
  config.snaplen = 40;
  Capture capture(config, kMaxFrame);
  capture.attach(*f.a);
  ASSERT_FALSE(f.a->transmit(make_frame(f.engine.pool(), 1000, test::kUnicast, 9)));
  auto frames = drain(capture);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].length, 40u);
  EXPECT_EQ(frames[0].wire_length, 1000u);
  EXPECT_EQ(seq_of(frames[0]), 9u);
}

TEST(Capture, FilterRunsWhereTheFrameIsTapped) {
  test::PairFixture f;
  CaptureConfig config;
  config.filter = std::make_shared<EvenFilter>();
  Capture capture(config, kMaxFrame);
  capture.attach(*f.a);
  for (std::uint64_t seq = 0; seq < 10; ++seq)
    ASSERT_FALSE(f.a->transmit(make_frame(f.engine.pool(), 64, test::kUnicast, seq)));
  auto frames = drain(capture);
  ASSERT_EQ(frames.size(), 5u);
  for (const auto& frame : frames) EXPECT_EQ(seq_of(frame) % 2, 0u);
  EXPECT_EQ(capture.counters().seen, 10u);
  EXPECT_EQ(capture.counters().matched, 5u);
}

TEST(Capture, AFullRingDropsCaptureFramesNotWireFrames) {
  test::PairFixture f;
  CaptureConfig config;
  config.buffer_bytes = 1;  // the smallest ring: 16 slots
  Capture capture(config, kMaxFrame);
  capture.attach(*f.a);
  EXPECT_EQ(capture.slots(), 16u);
  for (std::uint64_t seq = 0; seq < 100; ++seq)
    ASSERT_FALSE(f.a->transmit(make_frame(f.engine.pool(), 64, test::kUnicast, seq)));
  ASSERT_TRUE(f.at_b->wait_for(100));
  EXPECT_EQ(f.a->counters().opackets, 100u);
  EXPECT_EQ(capture.counters().matched, 100u);
  EXPECT_EQ(capture.counters().dropped, 84u);
  auto frames = drain(capture);
  ASSERT_EQ(frames.size(), 16u);
  for (std::uint64_t i = 0; i < 16; ++i) EXPECT_EQ(seq_of(frames[i]), i);
}

TEST(Capture, SeveralCapturesOnOneEndEachWithItsFilter) {
  test::PairFixture f;
  CaptureConfig even;
  even.filter = std::make_shared<EvenFilter>();
  Capture all({}, kMaxFrame), evens(even, kMaxFrame);
  all.attach(*f.a);
  evens.attach(*f.a);
  for (std::uint64_t seq = 0; seq < 6; ++seq)
    ASSERT_FALSE(f.a->transmit(make_frame(f.engine.pool(), 64, test::kUnicast, seq)));
  EXPECT_EQ(drain(all).size(), 6u);
  EXPECT_EQ(drain(evens).size(), 3u);
}

TEST(Capture, PortsNumberTheAttachedInterfaces) {
  test::PairFixture f;
  CaptureConfig config;
  config.in = false;
  Capture capture(config, kMaxFrame);
  EXPECT_EQ(capture.attach(*f.a), 0u);
  EXPECT_EQ(capture.attach(*f.b), 1u);
  ASSERT_FALSE(f.a->transmit(make_frame(f.engine.pool(), 64, test::kUnicast, 1)));
  ASSERT_FALSE(f.b->transmit(make_frame(f.engine.pool(), 64, test::kUnicast, 2)));
  auto frames = drain(capture);
  ASSERT_EQ(frames.size(), 2u);
  for (const auto& frame : frames) EXPECT_EQ(frame.port, seq_of(frame) - 1);
}

TEST(Capture, DetachStopsTheTapsAndKeepsWhatWasCaptured) {
  test::PairFixture f;
  Capture capture({}, kMaxFrame);
  capture.attach(*f.a);
  ASSERT_FALSE(f.a->transmit(make_frame(f.engine.pool(), 64, test::kUnicast, 1)));
  capture.detach();
  ASSERT_FALSE(f.a->transmit(make_frame(f.engine.pool(), 64, test::kUnicast, 2)));
  auto frames = drain(capture);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(seq_of(frames[0]), 1u);
}

TEST(Capture, WaitWakesWhenAFrameIsTapped) {
  test::PairFixture f;
  Capture capture({}, kMaxFrame);
  capture.attach(*f.a);
  EXPECT_FALSE(capture.wait(10ms));
  std::thread sender([&] {
    std::this_thread::sleep_for(20ms);
    (void)f.a->transmit(make_frame(f.engine.pool(), 64, test::kUnicast, 1));
  });
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(capture.wait(10s));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  sender.join();
  EXPECT_EQ(drain(capture).size(), 1u);
}

}  // namespace
}  // namespace epair
