// The memif settings, the control messages' bytes, the checks on what
// a peer puts in shared memory, and what this side writes there.
#include "memif_protocol.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <optional>
#include <vector>

#include "memif_rings.hpp"

namespace epair::memif {
namespace {

std::string error_of(std::string_view text) {
  auto config = parse_config(text);
  EXPECT_FALSE(config) << text;
  return config ? "" : config.status().message();
}

TEST(MemifConfigTest, EverySettingRoundTrips) {
  auto c = parse_config(
      "socket /run/x.sock role client id 7 secret abc ring-size 256 buffer-size 9216 queues 2 rx-mode polling");
  ASSERT_TRUE(c) << c.status().message();
  EXPECT_EQ(c->socket, "/run/x.sock");
  EXPECT_EQ(c->role, Role::kClient);
  EXPECT_EQ(c->id, 7u);
  EXPECT_EQ(c->secret, "abc");
  EXPECT_EQ(c->ring_size(), 256u);
  EXPECT_EQ(c->buffer_size, 9216);
  EXPECT_EQ(c->queues, 2);
  EXPECT_EQ(c->rx_mode, RxMode::kPolling);
  auto again = parse_config(format_config(*c));
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, *c);
  EXPECT_EQ(format_config(*c, false).find("abc"), std::string::npos) << "the secret is not shown";
}

// Parses words, expects them shown as `shown` and read back the same.
Config parsed_and_shown(std::string_view words, std::string_view shown) {
  auto c = parse_config(words);
  EXPECT_TRUE(c) << c.status().message();
  if (!c) return {};
  EXPECT_EQ(format_config(*c), shown);
  auto again = parse_config(format_config(*c));
  EXPECT_TRUE(again && *again == *c) << words;
  return *c;
}

TEST(MemifConfigTest, RxUsecsRoundTripsAndShowsOnlyWhenSet) {
  const Config c = parsed_and_shown(
      "socket /a rx-usecs 50",
      "socket /a role server id 0 ring-size 1024 buffer-size 2048 queues 1 rx-mode interrupt rx-usecs 50");
  EXPECT_EQ(c.rx_usecs, 50u);
  auto zero = parse_config("socket /a rx-mode polling rx-usecs 0");
  ASSERT_TRUE(zero) << zero.status().message();
  EXPECT_EQ(format_config(*zero).find("rx-usecs"), std::string::npos);
  auto most = parse_config("socket /a rx-usecs 10000");
  ASSERT_TRUE(most);
  EXPECT_EQ(most->rx_usecs, kMaxRxUsecs);
}

TEST(MemifConfigTest, FlowControlRoundTripsAndShowsOnlyWhenOn) {
  const Config c = parsed_and_shown(
      "socket /a rx-mode polling flow-control on",
      "socket /a role server id 0 ring-size 1024 buffer-size 2048 queues 1 rx-mode polling flow-control on");
  EXPECT_TRUE(c.flow_control);
  auto off = parse_config("socket /a flow-control off");
  ASSERT_TRUE(off) << off.status().message();
  EXPECT_FALSE(off->flow_control);
  EXPECT_EQ(format_config(*off).find("flow-control"), std::string::npos);
}

TEST(MemifConfigTest, ZeroCopyNeedsOneQueueAsClientAndShowsOnlyWhenOn) {
  const Config c = parsed_and_shown(
      "socket /a zero-copy on role client",
      "socket /a role client id 0 ring-size 1024 buffer-size 2048 queues 1 rx-mode interrupt zero-copy on");
  EXPECT_TRUE(c.zero_copy);
  auto off = parse_config("socket /a zero-copy off");
  ASSERT_TRUE(off) << off.status().message();
  EXPECT_FALSE(off->zero_copy);
  EXPECT_EQ(format_config(*off).find("zero-copy"), std::string::npos);
  const auto error_of = [](std::string_view text) { return parse_config(text).status().message(); };
  EXPECT_EQ(error_of("socket /a zero-copy on"), "memif: zero-copy needs role client");
  EXPECT_EQ(error_of("socket /a role client queues 2 zero-copy on"), "memif: zero-copy takes one queue pair");
  EXPECT_EQ(error_of("socket /a role client zero-copy 1"), "memif: zero-copy is 'on' or 'off', not '1'");
}

TEST(MemifConfigTest, DefaultsAreDpdks) {
  auto c = parse_config("socket @epair");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->role, Role::kServer);
  EXPECT_EQ(c->ring_size(), 1024u);
  EXPECT_EQ(c->buffer_size, 2048);
  EXPECT_EQ(c->queues, 1);
  EXPECT_EQ(c->rx_mode, RxMode::kInterrupt);
  EXPECT_FALSE(c->flow_control);
  EXPECT_EQ(format_config(*c),
            "socket @epair role server id 0 ring-size 1024 buffer-size 2048 queues 1 rx-mode interrupt");
}

TEST(MemifConfigTest, BadSettingsAreOneLineErrors) {
  EXPECT_EQ(error_of(""), "memif: needs 'socket PATH'");
  EXPECT_EQ(error_of("socket"), "memif: 'socket' needs a value");
  EXPECT_EQ(error_of("socket /a id -1"), "memif: id must be a whole number from 0 to 4294967295: '-1'");
  EXPECT_EQ(error_of("socket /a ring-size 1"), "memif: ring-size must be a whole number from 2 to 16384: '1'");
  EXPECT_EQ(error_of("socket /a ring-size 1000"), "memif: ring-size must be a power of two: '1000'");
  EXPECT_EQ(error_of("socket /a buffer-size 64"), "memif: buffer-size must be a whole number from 128 to 65535: '64'");
  EXPECT_EQ(error_of("socket /a queues 256"), "memif: queues must be a whole number from 1 to 255: '256'");
  EXPECT_EQ(error_of("socket /a rx-mode busy"), "memif: rx-mode is 'interrupt' or 'polling', not 'busy'");
  EXPECT_EQ(error_of("socket /a rx-usecs 10001"), "memif: rx-usecs must be a whole number from 0 to 10000: '10001'");
  EXPECT_EQ(error_of("socket /a rx-usecs 5us"), "memif: rx-usecs must be a whole number from 0 to 10000: '5us'");
  EXPECT_EQ(error_of("socket /a rx-mode polling rx-usecs 50"), "memif: rx-usecs needs rx-mode interrupt");
  EXPECT_EQ(error_of("socket /a flow-control yes"), "memif: flow-control is 'on' or 'off', not 'yes'");
  EXPECT_EQ(error_of("socket /a flow-control"), "memif: 'flow-control' needs a value");
  EXPECT_EQ(error_of("socket /a role slave"), "memif: role is 'server' or 'client', not 'slave'");
  EXPECT_EQ(error_of("socket /a socket /b"), "memif: 'socket' given twice");
  EXPECT_EQ(error_of("socket /a mode ip"), "memif: unknown setting 'mode'");
  EXPECT_EQ(error_of("socket /a secret 0123456789012345678901234"),
            "memif: secret must be 1 to 24 printable characters");
  EXPECT_NE(error_of("socket x.sock").find("absolute path"), std::string::npos);
  EXPECT_NE(error_of("socket /" + std::string(107, 'a')).find("at most 107 bytes"), std::string::npos);
}

TEST(MemifConfigTest, OnlyTheKindMemifAttaches) {
  EXPECT_TRUE(is_memif_attach("memif socket /a"));
  EXPECT_FALSE(is_memif_attach("memifx socket /a"));
  EXPECT_FALSE(is_memif_attach("vxlan remote 10.0.0.1"));
}

// The bytes DPDK's memif.h lays out: a 16-bit type, then the packed body.
TEST(MemifMessageTest, FieldsSitWhereDpdkPutsThem) {
  Hello hello{"epair", 0x0200, 0x0200, 15, 1, 2, 10};
  const Wire h = encode(hello);
  EXPECT_EQ(h[0], 2);  // HELLO
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(&h[2])), "epair");
  EXPECT_EQ(h[34], 0x00);
  EXPECT_EQ(h[35], 0x02);  // min_version 2.0, little-endian
  EXPECT_EQ(h[38], 15);    // max_region
  EXPECT_EQ(h[40], 1);     // max_m2s_ring (server to client)
  EXPECT_EQ(h[42], 2);     // max_s2m_ring (client to server)
  EXPECT_EQ(h[44], 10);    // max_log2_ring_size

  const Wire r = encode(AddRing{AddRing::kFlagC2S, 3, 1, 0x01020304, 10, 0});
  EXPECT_EQ(r[0], 5);  // ADD_RING
  EXPECT_EQ(r[2], 1);  // flags
  EXPECT_EQ(r[4], 3);  // index
  EXPECT_EQ(r[6], 1);  // region
  EXPECT_EQ(r[8], 0x04);
  EXPECT_EQ(r[11], 0x01);  // offset, little-endian
  EXPECT_EQ(r[12], 10);    // log2 ring size

  const Wire i = encode(Init{0x0200, 0xaabbccdd, 0, "s3cret", "app"});
  EXPECT_EQ(i[4], 0xdd);  // id
  EXPECT_EQ(i[8], 0);     // mode
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(&i[9])), "s3cret");
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(&i[33])), "app");
}

TEST(MemifMessageTest, EveryMessageRoundTrips) {
  const std::vector<Message> messages = {
      Ack{},
      Hello{"epair", 0x0100, 0x0200, 3, 4, 5, 14},
      Init{0x0200, 42, 0, "secret", "name"},
      AddRegion{2, 1ull << 33},
      AddRing{0, 1, 0, 4096, 12, 0},
      Connect{"memif0/0"},
      Connected{"epair0b"},
      Disconnect{5, "incorrect secret"},
  };
  for (const Message& m : messages) {
    const Wire wire = encode(m);
    auto back = decode(wire);
    ASSERT_TRUE(back) << type_name(m);
    EXPECT_EQ(back->index(), m.index());
    EXPECT_EQ(encode(*back), wire) << type_name(m);
  }
}

TEST(MemifMessageTest, BadMessagesAreRefused) {
  Wire wire{};
  EXPECT_EQ(decode(wire).status().message(), "memif: unknown message type 0");
  wire[0] = 9;
  EXPECT_EQ(decode(wire).status().message(), "memif: unknown message type 9");
  const std::vector<std::uint8_t> short_message(10, 1);
  EXPECT_EQ(decode(short_message).status().value(), EPROTO);
  // A name that fills its field has no NUL: cut at the field's end.
  Wire hello = encode(Hello{});
  for (int k = 0; k < 32; ++k) hello[2 + k] = 'x';
  auto decoded = decode(hello);
  ASSERT_TRUE(decoded);
  EXPECT_EQ(std::get<Hello>(*decoded).name, std::string(32, 'x'));
}

TEST(MemifMemoryTest, DescriptorsMustLieInsideARegion) {
  const std::vector<std::uint64_t> regions = {4096, 100};
  EXPECT_TRUE(descriptor_fits({0, 0, 4096, 0, 0}, regions));
  EXPECT_TRUE(descriptor_fits({0, 1, 0, 100, 0}, regions));
  EXPECT_FALSE(descriptor_fits({0, 0, 4097, 0, 0}, regions));
  EXPECT_FALSE(descriptor_fits({0, 1, 1, 100, 0}, regions));
  EXPECT_FALSE(descriptor_fits({0, 2, 1, 0, 0}, regions)) << "no region 2";
  EXPECT_FALSE(descriptor_fits({0, 0, 0xffffffffu, 0xffffffffu, 0}, regions)) << "no wrap in 32 bits";
}

TEST(MemifMemoryTest, RingsMustFitTheirRegion) {
  const std::vector<std::uint64_t> regions = {ring_bytes(1024)};
  EXPECT_EQ(check_ring({0, 0, 0, 0, 10, 0}, regions, 10), "");
  EXPECT_EQ(check_ring({0, 0, 0, 0, 11, 0}, regions, 10), "ring size 2^11 is not 2^1..2^10");
  EXPECT_EQ(check_ring({0, 0, 0, 0, 0, 0}, regions, 10), "ring size 2^0 is not 2^1..2^10");
  EXPECT_EQ(check_ring({0, 0, 1, 0, 10, 0}, regions, 10), "ring in unknown region 1");
  EXPECT_EQ(check_ring({0, 0, 0, 4, 10, 0}, regions, 10), "ring at offset 4 is not 8-byte aligned");
  EXPECT_EQ(check_ring({0, 0, 0, 8, 10, 0}, regions, 10), "ring at offset 8 runs past its region (16512 bytes)");
}

TEST(MemifMemoryTest, ClientLayoutPutsRingsThenBuffers) {
  const Layout layout{2, 256, 2048};
  EXPECT_EQ(layout.ring_offset(true, 0), 0u);
  EXPECT_EQ(layout.ring_offset(true, 1), ring_bytes(256));
  EXPECT_EQ(layout.ring_offset(false, 0), 2 * ring_bytes(256));
  const std::uint64_t first = 4 * ring_bytes(256);
  EXPECT_EQ(layout.buffer_offset(true, 0, 0), first);
  EXPECT_EQ(layout.buffer_offset(true, 0, 255), first + 255 * 2048);
  EXPECT_EQ(layout.buffer_offset(false, 1, 0), first + 3 * 256 * 2048);
  EXPECT_EQ(layout.region_size(), first + 4 * 256 * 2048);
}

// DPDK 22.11's copy-mode transmit writes one descriptor past the free ones
// when a chained frame does not fit (epairctl(8), MEMIF): the descriptor,
// and the buffer, of the oldest frame the receiver holds. place_frame()
// must leave them as they were, as client and as server.
TEST(MemifRingTest, AFrameThatDoesNotFitWritesNothingPastTheFreeDescriptors) {
  const Layout layout{1, 8, 2048};
  Regions regions;
  auto memory = make_client_memory(layout, 3, regions);
  ASSERT_TRUE(memory) << memory.status().message();
  Ring ring;
  ring.base = regions.maps[0].base() + layout.ring_offset(true, 0);
  ring.size = layout.ring_size;
  const std::vector<std::uint8_t> frame(5000, 0x5a);  // three 2048-byte buffers
  for (const bool server : {false, true}) {
    SCOPED_TRACE(server ? "server" : "client");
    // Slots 6 and 7 free, 0 the peer's: the first of a chain it has not read.
    for (std::uint32_t slot = 0; slot < ring.size; ++slot) {
      write_descriptor(descriptor_at(ring.base, slot),
                       {0, 0, 2048, static_cast<std::uint32_t>(layout.buffer_offset(true, 0, slot)), 0});
    }
    const Descriptor held{kDescriptorNext, 0, 2048, static_cast<std::uint32_t>(layout.buffer_offset(true, 0, 0)), 0};
    write_descriptor(descriptor_at(ring.base, 0), held);
    std::uint8_t* held_buffer = regions.buffer(held);
    std::memset(held_buffer, 0xee, 2048);

    EXPECT_EQ(place_frame(ring, server, regions, layout, 6, 2, frame), std::optional<std::uint32_t>(0));
    const Descriptor after = read_descriptor(descriptor_at(ring.base, 0));
    EXPECT_EQ(after.flags, held.flags);
    EXPECT_EQ(after.length, held.length);
    EXPECT_EQ(after.offset, held.offset);
    EXPECT_EQ(std::count(held_buffer, held_buffer + 2048, 0xee), 2048);

    // With the third descriptor free the frame goes on, chained.
    EXPECT_EQ(place_frame(ring, server, regions, layout, 6, 3, frame), std::optional<std::uint32_t>(3));
    const Descriptor first = read_descriptor(descriptor_at(ring.base, 6));
    const Descriptor second = read_descriptor(descriptor_at(ring.base, 7));
    const Descriptor last = read_descriptor(descriptor_at(ring.base, 0));
    EXPECT_EQ(std::vector<std::uint32_t>({first.length, second.length, last.length}),
              std::vector<std::uint32_t>({2048, 2048, 904}));
    EXPECT_EQ(std::vector<std::uint16_t>({first.flags, second.flags, last.flags}),
              std::vector<std::uint16_t>({kDescriptorNext, kDescriptorNext, 0}));
    EXPECT_EQ(std::count(held_buffer, held_buffer + 904, 0x5a), 904);
  }
}

}  // namespace
}  // namespace epair::memif
