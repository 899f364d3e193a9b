#include "epair/flow_hash.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace epair {
namespace {

std::vector<std::uint8_t> ethernet(std::uint16_t type, bool vlan = false) {
  std::vector<std::uint8_t> f(12, 0x02);
  if (vlan) {
    for (std::uint8_t byte : {0x81, 0x00, 0x00, 0x2a}) f.push_back(byte);
  }
  f.push_back(static_cast<std::uint8_t>(type >> 8));
  f.push_back(static_cast<std::uint8_t>(type));
  return f;
}

std::vector<std::uint8_t> ipv4_udp(std::uint8_t src_last, std::uint16_t sport, std::uint16_t dport, bool vlan = false,
                                   std::uint16_t frag = 0, std::uint8_t proto = 17) {
  auto f = ethernet(0x0800, vlan);
  std::uint8_t ip[20] = {0x45,
                         0,
                         0,
                         28,
                         0,
                         0,
                         static_cast<std::uint8_t>(frag >> 8),
                         static_cast<std::uint8_t>(frag),
                         64,
                         proto,
                         0,
                         0,
                         10,
                         0,
                         0,
                         src_last,
                         10,
                         0,
                         0,
                         2};
  f.insert(f.end(), ip, ip + 20);
  std::uint8_t udp[8] = {static_cast<std::uint8_t>(sport >> 8),
                         static_cast<std::uint8_t>(sport),
                         static_cast<std::uint8_t>(dport >> 8),
                         static_cast<std::uint8_t>(dport),
                         0,
                         8,
                         0,
                         0};
  f.insert(f.end(), udp, udp + 8);
  return f;
}

std::vector<std::uint8_t> ipv6_tcp(std::uint8_t src_last, std::uint16_t sport) {
  auto f = ethernet(0x86dd);
  std::vector<std::uint8_t> ip(40, 0);
  ip[0] = 0x60;
  ip[6] = 6;
  ip[7] = 64;
  ip[8] = 0xfd;
  ip[23] = src_last;
  ip[24] = 0xfd;
  ip[39] = 2;
  f.insert(f.end(), ip.begin(), ip.end());
  std::uint8_t tcp[20] = {static_cast<std::uint8_t>(sport >> 8), static_cast<std::uint8_t>(sport), 0, 80};
  f.insert(f.end(), tcp, tcp + 20);
  return f;
}

TEST(FlowHashTest, NonIpHasNoHash) {
  EXPECT_FALSE(flow_hash(ethernet(0x0806)));
  EXPECT_FALSE(flow_hash(std::vector<std::uint8_t>(10, 0)));
}

TEST(FlowHashTest, TruncatedIpHasNoHash) {
  auto f = ipv4_udp(1, 1000, 2000);
  f.resize(14 + 10);
  EXPECT_FALSE(flow_hash(f));
  auto g = ipv6_tcp(1, 1000);
  g.resize(14 + 30);
  EXPECT_FALSE(flow_hash(g));
}

TEST(FlowHashTest, Ipv4FiveTupleIsDeterministicAndPortSensitive) {
  EXPECT_EQ(flow_hash(ipv4_udp(1, 1000, 2000)), flow_hash(ipv4_udp(1, 1000, 2000)));
  EXPECT_NE(flow_hash(ipv4_udp(1, 1000, 2000)), flow_hash(ipv4_udp(1, 1001, 2000)));
  EXPECT_NE(flow_hash(ipv4_udp(1, 1000, 2000)), flow_hash(ipv4_udp(3, 1000, 2000)));
}

TEST(FlowHashTest, LooksThroughVlanTag) {
  auto tagged = flow_hash(ipv4_udp(1, 1000, 2000, true));
  ASSERT_TRUE(tagged);
  EXPECT_EQ(tagged, flow_hash(ipv4_udp(1, 1000, 2000, false)));
}

TEST(FlowHashTest, LaterFragmentsHashWithoutPorts) {
  // A non-first fragment carries no ports, so the ports bytes must not count.
  EXPECT_EQ(flow_hash(ipv4_udp(1, 1000, 2000, false, 0x0010)), flow_hash(ipv4_udp(1, 5, 6, false, 0x0010)));
}

TEST(FlowHashTest, ProtocolsWithoutPortsHashAddressesOnly) {
  EXPECT_EQ(flow_hash(ipv4_udp(1, 1000, 2000, false, 0, 1)), flow_hash(ipv4_udp(1, 7, 8, false, 0, 1)));
}

TEST(FlowHashTest, Ipv6FiveTuple) {
  ASSERT_TRUE(flow_hash(ipv6_tcp(1, 1000)));
  EXPECT_EQ(flow_hash(ipv6_tcp(1, 1000)), flow_hash(ipv6_tcp(1, 1000)));
  EXPECT_NE(flow_hash(ipv6_tcp(1, 1000)), flow_hash(ipv6_tcp(1, 1001)));
  EXPECT_NE(flow_hash(ipv6_tcp(1, 1000)), flow_hash(ipv6_tcp(2, 1000)));
}

}  // namespace
}  // namespace epair
