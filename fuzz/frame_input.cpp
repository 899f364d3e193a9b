// Fuzzes what a TAP end takes from outside: a virtio-net header and a frame
// as the kernel hands them over (runts, giants, VLAN tags, any offload
// fields), carried across a pair to an end that writes into a TAP, with a
// capture and its BPF filter watching and every captured frame summarised.
//
// Input: byte 0 picks the receiving end's MTU (bits 0-2) and whether the
// frame carries its VLAN tag in metadata (bit 3); bytes 1-2 are that tag;
// bytes 3-12 the virtio-net header; the rest is the frame.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>

#include "bpf.hpp"
#include "epair/callback_endpoint.hpp"
#include "epair/capture.hpp"
#include "epair/engine.hpp"
#include "epair/ethernet.hpp"
#include "fuzz_check.hpp"
#include "summary.hpp"
#include "virtio_net.hpp"

namespace {

using namespace epair;

constexpr std::array<std::uint32_t, 8> kMtus = {72, 576, 1280, 1500, 1504, 9000, 16110, 65535};

// What tap::Endpoint::input() does with a frame, checked as it goes.
void write_side(Interface& ifp, std::span<Frame* const> burst) {
  const std::uint32_t limit = ifp.mtu() + Interface::kFrameOverhead;
  for (Frame* frame : burst) {
    FUZZ_CHECK(frame->size() >= ethernet::kHeaderSize);
    const bool tagged = (frame->meta.flags & kFrameVlanTag) != 0;
    if (frame->wire_size() > limit || (tagged && !tap::insert_vlan_tag(*frame))) {
      frame->release();
      continue;
    }
    if (tagged) FUZZ_CHECK(ethernet::load_be16(frame->data() + 12) == ethernet::kTypeVlan);
    const tap::virtio_net_hdr hdr = tap::header_from_meta(frame->meta);
    FrameMeta back;
    tap::meta_from_header(hdr, back);
    constexpr std::uint32_t kOffloads = kFrameCsumPartial | kFrameCsumValid | kFrameGso;
    FUZZ_CHECK((back.flags & kOffloads) == (frame->meta.flags & kOffloads));
    FUZZ_CHECK(std::string_view(pcap::summarize(frame->bytes(), frame->size())).size() > 0);
    frame->release();
  }
}

struct World {
  World() : engine(config()) {
    auto created = engine.create("epair");
    FUZZ_CHECK(created);
    a = engine.find("epair0a");
    b = engine.find("epair0b");
    FUZZ_CHECK(a->set_up(true) && b->set_up(true));
    // The sender takes any frame up to 64 KiB; the receiver's MTU varies.
    FUZZ_CHECK(a->set_mtu(65535));
    CallbackEndpoint::attach_to(*b, write_side);
    auto filter = pcap::compile_filter("ip or arp or vlan or ip6", 65535);
    FUZZ_CHECK(filter);
    CaptureConfig capture_config;
    capture_config.filter = *filter;
    capture_config.buffer_bytes = 1u << 20;
    tap = std::make_unique<Capture>(capture_config, engine.pool().config().buffer_size);
    tap->attach(*a);
    tap->attach(*b);
  }

  static EngineConfig config() {
    EngineConfig c;
    c.workers = 1;
    c.deliver_inline = true;
    c.host_id = 1;
    c.pool.frames = 256;
    return c;
  }

  void drain_capture() {
    std::array<CapturedFrame*, 32> frames;
    for (std::size_t n; (n = tap->read(frames)) != 0;) {
      for (std::size_t i = 0; i < n; ++i) {
        FUZZ_CHECK(frames[i]->length <= frames[i]->wire_length);
        pcap::summarize({frames[i]->data, frames[i]->length}, frames[i]->wire_length);
      }
      tap->release({frames.data(), n});
    }
  }

  Engine engine;
  std::shared_ptr<Interface> a, b;
  std::unique_ptr<Capture> tap;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static World world;
  if (size < 13) return 0;
  const std::uint8_t control = data[0];
  FUZZ_CHECK(world.b->set_mtu(kMtus[control & 7]));
  tap::virtio_net_hdr hdr;
  std::memcpy(&hdr, data + 3, sizeof hdr);
  const std::span<const std::uint8_t> bytes(data + 13, size - 13);

  Frame* frame = world.engine.pool().alloc();
  if (frame == nullptr) return 0;
  if (!frame->assign(bytes)) {
    frame->release();
    return 0;
  }
  tap::meta_from_header(hdr, frame->meta);
  if ((control & 8) != 0) {
    frame->meta.flags |= kFrameVlanTag;
    frame->meta.vlan_tci = static_cast<std::uint16_t>(data[1] << 8 | data[2]);
  }
  const WireCount wire = frame->on_wire();
  FUZZ_CHECK(wire.frames >= 1 && wire.bytes >= frame->size());
  const auto before = world.a->counters();
  const std::error_code error = world.a->transmit(frame);
  const auto after = world.a->counters();
  if (!error) {
    FUZZ_CHECK(after.opackets == before.opackets + wire.frames);
  } else {
    FUZZ_CHECK(after.oerrors + after.oqdrops > before.oerrors + before.oqdrops);
  }
  world.drain_capture();
  return 0;
}
