// One line per frame, as tcpdump -e prints it: the Ethernet addresses, the
// protocol and, for IPv4/IPv6 with ICMP, TCP or UDP and for ARP, what the
// packet says.
#pragma once

#include <cstdint>
#include <span>
#include <string>

namespace epair::pcap {

/// "02:00:00:00:00:0a > 02:00:00:00:00:0b, IPv4, length 98: 10.0.0.1 >
/// 10.0.0.2: ICMP echo request, id 7, seq 1". data may be cut short
/// (snaplen); wire_length is the frame's whole length.
std::string summarize(std::span<const std::uint8_t> data, std::uint32_t wire_length);

/// "20:49:44.123456789" in local time.
std::string format_time(std::uint64_t timestamp_ns);

}  // namespace epair::pcap
