// The capture library: BPF filters compiled by libpcap, pcapng blocks
// written and read back, and the one-line summaries.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "bpf.hpp"
#include "pcapng.hpp"
#include "summary.hpp"

namespace epair::pcap {
namespace {

using Bytes = std::vector<std::uint8_t>;

Bytes ethernet(std::uint16_t type, const Bytes& payload) {
  Bytes frame = {0x02,
                 0,
                 0,
                 0,
                 0,
                 0x0b,
                 0x02,
                 0,
                 0,
                 0,
                 0,
                 0x0a,
                 static_cast<std::uint8_t>(type >> 8),
                 static_cast<std::uint8_t>(type)};
  frame.insert(frame.end(), payload.begin(), payload.end());
  return frame;
}

// IPv4 header (no options) from 10.0.0.1 to 10.0.0.2 around l4.
Bytes ipv4(std::uint8_t protocol, const Bytes& l4) {
  const auto total = static_cast<std::uint16_t>(20 + l4.size());
  Bytes ip = {0x45,
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
              0,
              0,
              1,
              10,
              0,
              0,
              2};
  ip.insert(ip.end(), l4.begin(), l4.end());
  return ip;
}

Bytes icmp_echo_request() { return ethernet(0x0800, ipv4(1, {8, 0, 0, 0, 0, 7, 0, 1, 'a', 'b', 'c', 'd'})); }

Bytes tcp_syn() {
  Bytes tcp(20, 0);
  tcp[0] = 0x30;  // source port 12345
  tcp[1] = 0x39;
  tcp[3] = 80;
  tcp[7] = 1;  // seq 1
  tcp[12] = 0x50;
  tcp[13] = 0x02;
  return ethernet(0x0800, ipv4(6, tcp));
}

Bytes arp_request() {
  return ethernet(0x0806, {0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 0x0a, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10, 0, 0, 2});
}

bool matches(const std::shared_ptr<const CaptureFilter>& filter, const Bytes& frame) {
  return filter->match(frame, static_cast<std::uint32_t>(frame.size()));
}

TEST(Filter, CompiledExpressionSelectsFrames) {
  auto icmp = compile_filter("icmp", 262144);
  ASSERT_TRUE(icmp) << icmp.status().message();
  EXPECT_TRUE(matches(*icmp, icmp_echo_request()));
  EXPECT_FALSE(matches(*icmp, tcp_syn()));
  EXPECT_FALSE(matches(*icmp, arp_request()));
  auto port = compile_filter("tcp dst port 80 and host 10.0.0.2", 262144);
  ASSERT_TRUE(port);
  EXPECT_TRUE(matches(*port, tcp_syn()));
  EXPECT_FALSE(matches(*port, icmp_echo_request()));
  auto arp = compile_filter("arp", 262144);
  ASSERT_TRUE(arp);
  EXPECT_TRUE(matches(*arp, arp_request()));
}

TEST(Filter, BadExpressionIsEinvalWithLibpcapsMessage) {
  auto bad = compile_filter("tcp port", 262144);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.status().code().value(), EINVAL);
  EXPECT_NE(bad.status().message().find("bad filter: "), std::string::npos);
  EXPECT_NE(bad.status().message().find("syntax error"), std::string::npos) << bad.status().message();
  auto unknown = compile_filter("tcp port 99999", 262144);
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.status().code().value(), EINVAL);
}

TEST(Filter, EmptyExpressionKeepsEverything) {
  auto none = compile_filter("  ", 262144);
  ASSERT_TRUE(none);
  EXPECT_EQ(*none, nullptr);
}

TEST(Pcapng, BlocksReadBackAsWritten) {
  std::string out;
  pcapng::append_section_header(out, "test");
  pcapng::append_interface(out, "epair0a", 1500);
  pcapng::append_interface(out, "epair0b", 1500);
  const Bytes frame = icmp_echo_request();
  pcapng::append_packet(out, 1, 1'700'000'000'123'456'789u, pcapng::Direction::kIn, frame, 1000);
  pcapng::append_packet(out, 0, 1'700'000'000'123'456'790u, pcapng::Direction::kOut, Bytes(3, 0xab), 3);
  pcapng::append_statistics(out, 0, {1'700'000'001'000'000'000u, 10, 8, 2, 6});
  EXPECT_EQ(out.size() % 4, 0u);

  // Fed a byte at a time: blocks come out only when whole.
  pcapng::Reader reader;
  std::vector<pcapng::Block> blocks;
  std::vector<std::string> copies;
  std::vector<std::uint32_t> types;
  std::vector<std::string> names;
  std::vector<pcapng::Packet> packets;
  std::vector<Bytes> datas;
  std::optional<pcapng::Statistics> stats;
  for (char c : out) {
    reader.feed({reinterpret_cast<const std::uint8_t*>(&c), 1});
    while (auto block = reader.next()) {
      types.push_back(block->type);
      if (block->type == pcapng::kInterfaceDescription) names.push_back(pcapng::parse_interface_name(*block));
      if (auto packet = pcapng::parse_packet(*block)) {
        packets.push_back(*packet);
        datas.emplace_back(packet->data.begin(), packet->data.end());
      }
      if (auto s = pcapng::parse_statistics(*block)) stats = s;
    }
  }
  EXPECT_TRUE(reader.error().empty());
  EXPECT_EQ(reader.pending(), 0u);
  EXPECT_EQ(types, (std::vector<std::uint32_t>{pcapng::kSectionHeader, 1, 1, 6, 6, 5}));
  EXPECT_EQ(names, (std::vector<std::string>{"epair0a", "epair0b"}));
  ASSERT_EQ(packets.size(), 2u);
  EXPECT_EQ(packets[0].interface, 1u);
  EXPECT_EQ(packets[0].timestamp_ns, 1'700'000'000'123'456'789u);
  EXPECT_EQ(packets[0].direction, pcapng::Direction::kIn);
  EXPECT_EQ(packets[0].wire_length, 1000u);
  EXPECT_EQ(datas[0], frame);
  EXPECT_EQ(packets[1].direction, pcapng::Direction::kOut);
  EXPECT_EQ(datas[1], Bytes(3, 0xab));
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->received, 10u);
  EXPECT_EQ(stats->accepted, 8u);
  EXPECT_EQ(stats->dropped, 2u);
  EXPECT_EQ(stats->delivered, 6u);
}

TEST(Pcapng, ReaderRefusesWhatIsNotPcapng) {
  pcapng::Reader reader;
  const std::string junk = "{\"v\":1,\"ok\":true}\n and more text";
  reader.feed({reinterpret_cast<const std::uint8_t*>(junk.data()), junk.size()});
  EXPECT_FALSE(reader.next());
  EXPECT_EQ(reader.error(), "not a pcapng stream");
}

TEST(Summary, LikeTcpdump) {
  const Bytes icmp = icmp_echo_request();
  EXPECT_EQ(summarize(icmp, static_cast<std::uint32_t>(icmp.size())),
            "02:00:00:00:00:0a > 02:00:00:00:00:0b, IPv4, length 46: 10.0.0.1 > 10.0.0.2: ICMP echo request, id 7, "
            "seq 1, length 12");
  const Bytes syn = tcp_syn();
  EXPECT_EQ(summarize(syn, static_cast<std::uint32_t>(syn.size())),
            "02:00:00:00:00:0a > 02:00:00:00:00:0b, IPv4, length 54: 10.0.0.1.12345 > 10.0.0.2.80: Flags [S], seq 1, "
            "length 0");
  const Bytes arp = arp_request();
  EXPECT_EQ(summarize(arp, static_cast<std::uint32_t>(arp.size())),
            "02:00:00:00:00:0a > 02:00:00:00:00:0b, ARP, length 42: Request who-has 10.0.0.2 tell 10.0.0.1");
  const Bytes other = ethernet(0x88b5, Bytes(10, 0));
  EXPECT_EQ(summarize(other, 24), "02:00:00:00:00:0a > 02:00:00:00:00:0b, ethertype 0x88b5, length 24");
  EXPECT_EQ(summarize(Bytes(6, 0), 60), "truncated frame, length 60");
  // Cut by the snap length: what is there is named, what is not is not read.
  EXPECT_EQ(summarize({icmp.data(), 20}, 46),
            "02:00:00:00:00:0a > 02:00:00:00:00:0b, IPv4, length 46: IPv4, truncated");
}

}  // namespace
}  // namespace epair::pcap
