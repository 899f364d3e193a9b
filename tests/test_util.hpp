// Helpers shared by the tests: frames, a collecting endpoint, waiting.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include "epair/epair.hpp"

namespace epair::test {

inline constexpr MacAddress kUnicast{{0x02, 0x00, 0x00, 0x00, 0x00, 0x02}};
inline constexpr MacAddress kSource{{0x02, 0x00, 0x00, 0x00, 0x00, 0x01}};
inline constexpr MacAddress kBroadcast{{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}};
inline constexpr MacAddress kMulticast{{0x01, 0x00, 0x5e, 0x00, 0x00, 0x01}};

/// An Ethernet frame of size bytes to dst, ethertype 0x88b5 (local
/// experimental), the payload starting with seq.
inline Frame* make_frame(FramePool& pool, std::uint32_t size = 64, MacAddress dst = kUnicast, std::uint64_t seq = 0) {
  Frame* frame = pool.alloc();
  if (frame == nullptr) return nullptr;
  std::uint8_t* p = frame->append(size);
  if (p == nullptr) {
    frame->release();
    return nullptr;
  }
  std::memset(p, 0, size);
  std::memcpy(p, dst.bytes.data(), 6);
  std::memcpy(p + 6, kSource.bytes.data(), 6);
  p[12] = 0x88;
  p[13] = 0xb5;
  if (size >= 22) std::memcpy(p + 14, &seq, sizeof seq);
  return frame;
}

inline std::uint64_t frame_seq(const Frame& frame) {
  std::uint64_t seq = 0;
  if (frame.size() >= 22) std::memcpy(&seq, frame.data() + 14, sizeof seq);
  return seq;
}

/// Waits up to timeout for pred to hold.
template <class Pred>
bool wait_until(Pred pred, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return true;
}

/// What a receiving endpoint saw of one frame.
struct Received {
  std::uint64_t seq;
  std::uint32_t size;
  FrameMeta meta;
  std::vector<std::uint8_t> bytes;
};

/// An endpoint that records every frame it receives and frees it.
class Collector final : public Endpoint {
 public:
  void input(Interface&, std::span<Frame* const> burst) noexcept override {
    std::lock_guard lock(mutex_);
    for (Frame* frame : burst) {
      frames_.push_back(
          {frame_seq(*frame), frame->size(), frame->meta, {frame->data(), frame->data() + frame->size()}});
      frame->release();
    }
    ++bursts_;
  }
  std::size_t count() const {
    std::lock_guard lock(mutex_);
    return frames_.size();
  }
  std::vector<Received> frames() const {
    std::lock_guard lock(mutex_);
    return frames_;
  }
  bool wait_for(std::size_t n, std::chrono::milliseconds timeout = std::chrono::seconds(5)) const {
    return wait_until([&] { return count() >= n; }, timeout);
  }

 private:
  mutable std::mutex mutex_;
  std::vector<Received> frames_;
  std::size_t bursts_ = 0;
};

/// Creates a pair from name in engine's host vnet and brings both ends UP.
struct UpPair {
  explicit UpPair(Engine& engine, std::string_view name = "epair") {
    auto created = engine.create(name);
    a = engine.find(*created);
    b = a->peer();
    (void)a->set_up(true);
    (void)b->set_up(true);
  }
  std::shared_ptr<Interface> a, b;
};

/// An engine with a pair epair0a/epair0b, both UP, a Collector on each.
struct PairFixture {
  explicit PairFixture(EngineConfig config = small_config()) : engine(config) {
    auto name = engine.create("epair");
    a = engine.find("epair0a");
    b = engine.find("epair0b");
    (void)a->set_up(true);
    (void)b->set_up(true);
    a->attach(at_a);
    b->attach(at_b);
  }
  static EngineConfig small_config() {
    EngineConfig config;
    config.workers = 2;
    config.host_id = 0x1234'5678'9abc'def0ULL;
    config.pool.frames = 8192;
    return config;
  }
  Engine engine;
  std::shared_ptr<Interface> a, b;
  std::shared_ptr<Collector> at_a = std::make_shared<Collector>();
  std::shared_ptr<Collector> at_b = std::make_shared<Collector>();
};

}  // namespace epair::test
