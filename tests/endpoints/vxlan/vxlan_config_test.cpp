// The settings of a VXLAN end, the RFC 7348 header, and inner checksums
// left to offload by a sender on the same machine.
#include "vxlan_config.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace epair::vxlan {
namespace {

std::string error_of(std::string_view text) {
  auto config = parse_config(text);
  EXPECT_FALSE(config) << text;
  return config ? "" : config.status().message();
}

TEST(VxlanConfigTest, EverySettingParsesAndFormatsBack) {
  auto c =
      parse_config("remote 192.0.2.1 local 192.0.2.2 vni 42 dstport 4790 srcport 1000 2000 ttl 9 dev eth0 df unset");
  ASSERT_TRUE(c) << c.status().message();
  EXPECT_EQ(c->remote.family, AF_INET);
  EXPECT_EQ(c->local->text, "192.0.2.2");
  EXPECT_EQ(c->vni, 42u);
  EXPECT_EQ(c->dstport, 4790);
  EXPECT_EQ(c->srcport_min, 1000);
  EXPECT_EQ(c->srcport_max, 2000);
  EXPECT_EQ(c->ttl, 9);
  EXPECT_EQ(c->dev, "eth0");
  EXPECT_FALSE(c->dont_fragment);
  EXPECT_EQ(c->overhead(), 50u);
  auto again = parse_config(format_config(*c));
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, *c);
}

TEST(VxlanConfigTest, DefaultsAreTheRfcs) {
  auto c = parse_config("remote 2001:db8::1");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->remote.family, AF_INET6);
  EXPECT_EQ(c->dstport, 4789);
  EXPECT_EQ(c->srcport_min, 49152);
  EXPECT_EQ(c->srcport_max, 65535);
  EXPECT_EQ(c->vni, 0u);
  EXPECT_EQ(c->overhead(), 70u);
  EXPECT_TRUE(c->dont_fragment);
  EXPECT_EQ(format_config(*c), "remote 2001:db8::1 vni 0 dstport 4789 srcport 49152 65535");
}

TEST(VxlanConfigTest, BadSettingsAreOneLineErrors) {
  EXPECT_EQ(error_of(""), "vxlan: needs 'remote ADDR'");
  EXPECT_EQ(error_of("remote"), "vxlan: 'remote' needs a value");
  EXPECT_EQ(error_of("remote 10.0.0.300"), "vxlan: invalid remote address '10.0.0.300'");
  EXPECT_EQ(error_of("remote 10.0.0.1 vni 16777216"),
            "vxlan: vni must be a whole number from 0 to 16777215: '16777216'");
  EXPECT_EQ(error_of("remote 10.0.0.1 dstport 0"), "vxlan: dstport must be a whole number from 1 to 65535: '0'");
  EXPECT_EQ(error_of("remote 10.0.0.1 srcport 2000"), "vxlan: 'srcport' needs MIN and MAX");
  EXPECT_EQ(error_of("remote 10.0.0.1 srcport 2000 1000"), "vxlan: srcport range 2000-1000 is empty");
  EXPECT_EQ(error_of("remote 10.0.0.1 ttl 0"), "vxlan: ttl must be a whole number from 1 to 255: '0'");
  EXPECT_EQ(error_of("remote 10.0.0.1 dev a/b"), "vxlan: invalid dev 'a/b'");
  EXPECT_EQ(error_of("remote 10.0.0.1 df maybe"), "vxlan: df is 'set' or 'unset', not 'maybe'");
  EXPECT_EQ(error_of("remote 10.0.0.1 remote 10.0.0.2"), "vxlan: 'remote' given twice");
  EXPECT_EQ(error_of("remote 10.0.0.1 mtu 1400"), "vxlan: unknown setting 'mtu'");
  EXPECT_EQ(error_of("remote 10.0.0.1 local ::1"), "vxlan: local ::1 and remote 10.0.0.1 are not of one family");
}

TEST(VxlanConfigTest, OnlyTheKindVxlanAttaches) {
  EXPECT_TRUE(is_vxlan_attach("vxlan remote 10.0.0.1"));
  EXPECT_TRUE(is_vxlan_attach("vxlan"));
  EXPECT_FALSE(is_vxlan_attach("vxlanx remote 10.0.0.1"));
  EXPECT_FALSE(is_vxlan_attach("gre remote 10.0.0.1"));
}

std::vector<std::uint8_t> datagram(std::uint8_t flags, std::uint32_t vni, std::size_t frame_bytes) {
  std::vector<std::uint8_t> d(kHeaderSize + frame_bytes, 0);
  write_header(d.data(), vni);
  d[0] = flags;
  return d;
}

TEST(VxlanHeaderTest, WritesTheIFlagAndTheVni) {
  std::uint8_t h[kHeaderSize];
  write_header(h, 0xabcdef);
  const std::uint8_t want[kHeaderSize] = {0x08, 0, 0, 0, 0xab, 0xcd, 0xef, 0};
  EXPECT_TRUE(std::equal(h, h + kHeaderSize, want));
}

TEST(VxlanHeaderTest, EachBadDatagramHasItsCause) {
  EXPECT_EQ(check_datagram(datagram(0x08, 42, 60), 42), Drop::kNone);
  EXPECT_EQ(check_datagram(datagram(0x08, 42, 13), 42), Drop::kShort);
  EXPECT_EQ(check_datagram({}, 42), Drop::kShort);
  EXPECT_EQ(check_datagram(datagram(0x00, 42, 60), 42), Drop::kFlags);
  EXPECT_EQ(check_datagram(datagram(0x08, 43, 60), 42), Drop::kOtherVni);
  // Reserved flag bits are ignored on receipt (RFC 7348 5).
  EXPECT_EQ(check_datagram(datagram(0xff, 42, 60), 42), Drop::kNone);
  auto group_source = datagram(0x08, 42, 60);
  group_source[kHeaderSize + 6] = 0x01;
  EXPECT_EQ(check_datagram(group_source, 42), Drop::kBadFrame);
}

// The Internet checksum of pseudo-header bytes followed by the segment, the
// way RFC 768/793/8200 define it, without the code under test's shortcuts.
std::uint16_t reference_checksum(const std::vector<std::uint8_t>& pseudo, std::vector<std::uint8_t> segment,
                                 std::size_t field) {
  segment[field] = segment[field + 1] = 0;
  std::vector<std::uint8_t> all = pseudo;
  all.insert(all.end(), segment.begin(), segment.end());
  if (all.size() % 2 != 0) all.push_back(0);
  std::uint32_t sum = 0;
  for (std::size_t i = 0; i < all.size(); i += 2) sum += static_cast<std::uint32_t>(all[i] << 8 | all[i + 1]);
  while ((sum >> 16) != 0) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<std::uint16_t>(~sum);
}

struct Packet {
  std::vector<std::uint8_t> frame;
  std::size_t l4 = 0;
  std::size_t field = 0;
  std::vector<std::uint8_t> pseudo;

  std::uint16_t check() const { return static_cast<std::uint16_t>(frame[l4 + field] << 8 | frame[l4 + field + 1]); }
  void set_check(std::uint16_t v) {
    frame[l4 + field] = static_cast<std::uint8_t>(v >> 8);
    frame[l4 + field + 1] = static_cast<std::uint8_t>(v);
  }
  std::vector<std::uint8_t> segment() const { return {frame.begin() + static_cast<long>(l4), frame.end()}; }
  std::uint16_t correct() const { return reference_checksum(pseudo, segment(), field); }
  // What a sender leaves for offload: the pseudo-header's sum, uncomplemented.
  std::uint16_t partial() const { return static_cast<std::uint16_t>(~reference_checksum(pseudo, {0, 0}, 0)); }
};

// Ethernet (with an 802.1Q tag if asked), IPv4 or IPv6, then a TCP or UDP
// segment of `payload` bytes.
Packet packet(bool v6, std::uint8_t protocol, std::size_t payload, bool tagged = false) {
  Packet p;
  std::vector<std::uint8_t>& f = p.frame;
  f = {2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1};
  if (tagged) f.insert(f.end(), {0x81, 0x00, 0x00, 0x2a});
  f.insert(f.end(), {static_cast<std::uint8_t>(v6 ? 0x86 : 0x08), static_cast<std::uint8_t>(v6 ? 0xdd : 0x00)});
  const std::size_t l4_length = (protocol == 6 ? 20 : 8) + payload;
  const auto hi = static_cast<std::uint8_t>(l4_length >> 8);
  const auto lo = static_cast<std::uint8_t>(l4_length);
  if (v6) {
    f.insert(f.end(), {0x60, 0, 0, 0, hi, lo, protocol, 64});
    for (int i = 0; i < 32; ++i) f.push_back(static_cast<std::uint8_t>(0xfd + i * 7));
    p.pseudo.assign(f.end() - 32, f.end());
    p.pseudo.insert(p.pseudo.end(), {0, 0, hi, lo, 0, 0, 0, protocol});
  } else {
    const std::size_t total = 20 + l4_length;
    f.insert(f.end(), {0x45,
                       0,
                       static_cast<std::uint8_t>(total >> 8),
                       static_cast<std::uint8_t>(total),
                       0,
                       1,
                       0x40,
                       0,
                       64,
                       protocol,
                       0,
                       0,
                       10,
                       99,
                       4,
                       1,
                       10,
                       99,
                       4,
                       2});
    p.pseudo = {10, 99, 4, 1, 10, 99, 4, 2, 0, protocol, hi, lo};
  }
  p.l4 = f.size();
  p.field = protocol == 6 ? 16 : 6;
  f.insert(f.end(), {0x9c, 0x40, 0x14, 0x51});
  if (protocol == 6) {
    f.insert(f.end(), {0, 0, 1, 0, 0, 0, 2, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0});
  } else {
    f.insert(f.end(), {hi, lo, 0, 0});
  }
  for (std::size_t i = 0; i < payload; ++i) f.push_back(static_cast<std::uint8_t>(i * 31 + 7));
  return p;
}

TEST(OffloadedChecksumTest, FillsWhatASenderLeftToOffload) {
  for (const bool v6 : {false, true}) {
    for (const std::uint8_t protocol : {std::uint8_t{6}, std::uint8_t{17}}) {
      for (const std::size_t payload : {0u, 1u, 1399u, 1400u}) {
        SCOPED_TRACE(testing::Message() << (v6 ? "IPv6 " : "IPv4 ") << int{protocol} << " payload " << payload);
        Packet p = packet(v6, protocol, payload);
        const std::uint16_t want = p.correct();
        p.set_check(p.partial());
        EXPECT_TRUE(fill_offloaded_checksum(p.frame));
        EXPECT_EQ(p.check(), want);
        EXPECT_FALSE(fill_offloaded_checksum(p.frame)) << "a filled checksum verifies";
      }
    }
  }
}

TEST(OffloadedChecksumTest, BehindAVlanTag) {
  Packet p = packet(false, 6, 100, true);
  const std::uint16_t want = p.correct();
  p.set_check(p.partial());
  EXPECT_TRUE(fill_offloaded_checksum(p.frame));
  EXPECT_EQ(p.check(), want);
}

TEST(OffloadedChecksumTest, LeavesEverythingElseAlone) {
  const auto untouched = [](Packet p) {
    const std::vector<std::uint8_t> before = p.frame;
    EXPECT_FALSE(fill_offloaded_checksum(p.frame));
    EXPECT_EQ(p.frame, before);
  };
  Packet valid = packet(false, 6, 500);
  valid.set_check(valid.correct());
  untouched(valid);
  Packet corrupted = packet(true, 6, 500);
  corrupted.set_check(static_cast<std::uint16_t>(corrupted.correct() ^ 0x0100));
  untouched(corrupted);
  Packet no_checksum = packet(false, 17, 50);
  untouched(no_checksum);
  Packet fragment = packet(false, 6, 500);
  fragment.set_check(fragment.partial());
  fragment.frame[14 + 6] = 0x20;  // more fragments follow
  untouched(fragment);
  Packet cut = packet(false, 6, 500);
  cut.set_check(cut.partial());
  cut.frame.resize(cut.frame.size() - 1);
  untouched(cut);
  Packet icmp = packet(false, 1, 40);
  untouched(icmp);
  untouched(Packet{{1, 2, 3}});
}

}  // namespace
}  // namespace epair::vxlan
