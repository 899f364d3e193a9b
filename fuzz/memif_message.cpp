// Fuzzes what a memif peer can send: any 128 bytes are a message that
// encodes back to what it decoded from, or refused; the shared-memory
// checks never pass a descriptor or ring that leaves its region; the
// settings of a memif end read back what they print; and the client's
// handshake, fed the input as a series of server messages, only ever
// answers in turn and, once connected, has rings inside its region and
// no more queues or descriptors than it asked for.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>
#include <vector>

#include "fuzz_check.hpp"
#include "memif_handshake.hpp"
#include "memif_protocol.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace epair::memif;
  const std::span<const std::uint8_t> bytes(data, size);
  if (auto message = decode(bytes)) {
    FUZZ_CHECK(size == kMessageSize);
    const Wire wire = encode(*message);
    auto again = decode(wire);
    FUZZ_CHECK(again && again->index() == message->index() && encode(*again) == wire);
  } else {
    FUZZ_CHECK(message.status().value() == EPROTO);
  }

  // The first 16 bytes as a descriptor, the next as a ring announcement,
  // then region sizes of up to 32 bits.
  if (size >= 16 + 13) {
    Descriptor d;
    std::memcpy(&d, data, sizeof d);
    auto ring = decode([&] {
      Wire w{};
      w[0] = static_cast<std::uint8_t>(MessageType::kAddRing);
      std::memcpy(&w[2], data + 16, 13);
      return w;
    }());
    std::vector<std::uint64_t> regions;
    for (std::size_t at = 29; at + 4 <= size && regions.size() < 4; at += 4) {
      std::uint32_t region;
      std::memcpy(&region, data + at, sizeof region);
      regions.push_back(region);
    }
    if (descriptor_fits(d, regions)) {
      FUZZ_CHECK(d.region < regions.size() && std::uint64_t{d.offset} + d.length <= regions[d.region]);
    }
    const AddRing& r = std::get<AddRing>(*ring);
    if (check_ring(r, regions, kMaxLog2RingSize).empty()) {
      FUZZ_CHECK(r.region < regions.size() && r.log2_ring_size >= 1 && r.log2_ring_size <= kMaxLog2RingSize);
      FUZZ_CHECK(std::uint64_t{r.offset} + ring_bytes(1u << r.log2_ring_size) <= regions[r.region]);
    }
  }

  ClientHandshake handshake({7, "secret", "fuzz", "fuzz0", 2, 4, 256});
  std::size_t replies = 0;
  for (std::size_t at = 0; at + kMessageSize <= size && !handshake.connected(); at += kMessageSize) {
    auto message = decode(bytes.subspan(at, kMessageSize));
    if (!message) break;
    auto reply = handshake.on_message(*message);
    if (!reply) {
      FUZZ_CHECK(!reply.status().message().empty());
      break;
    }
    if (reply->message) {
      const auto kind = static_cast<MessageType>(encode(*reply->message)[0]);
      // INIT first, then ADD_REGION 0, the rings, and CONNECT.
      FUZZ_CHECK(replies != 0 || kind == MessageType::kInit);
      FUZZ_CHECK(replies != 1 || kind == MessageType::kAddRegion);
      FUZZ_CHECK(replies < 2 || kind == MessageType::kAddRing || kind == MessageType::kConnect);
      ++replies;
    }
  }
  if (handshake.connected()) {
    const Layout& layout = handshake.layout();
    FUZZ_CHECK(layout.queues >= 1 && layout.queues <= 2 && layout.ring_size <= 16);
    FUZZ_CHECK(handshake.regions().sizes.size() == 1 && handshake.regions().sizes[0] == layout.region_size());
    for (const auto& rings : handshake.memory().rings) {
      FUZZ_CHECK(rings.size() == layout.queues);
      for (const AddRing& r : rings) FUZZ_CHECK(check_ring(r, handshake.regions().sizes, 4).empty());
    }
    FUZZ_CHECK(replies == 2 + 2u * layout.queues + 1);
  }

  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto config = parse_config(text)) {
    auto again = parse_config(format_config(*config));
    FUZZ_CHECK(again && *again == *config);
  } else {
    FUZZ_CHECK(config.status().value() == EINVAL && !config.status().message().empty());
  }
  return 0;
}
