// The settings of a VXLAN end and the RFC 7348 header.
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
  auto c = parse_config("remote 192.0.2.1 local 192.0.2.2 vni 42 dstport 4790 srcport 1000 2000 ttl 9 dev eth0");
  ASSERT_TRUE(c) << c.status().message();
  EXPECT_EQ(c->remote.family, AF_INET);
  EXPECT_EQ(c->local->text, "192.0.2.2");
  EXPECT_EQ(c->vni, 42u);
  EXPECT_EQ(c->dstport, 4790);
  EXPECT_EQ(c->srcport_min, 1000);
  EXPECT_EQ(c->srcport_max, 2000);
  EXPECT_EQ(c->ttl, 9);
  EXPECT_EQ(c->dev, "eth0");
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

}  // namespace
}  // namespace epair::vxlan
