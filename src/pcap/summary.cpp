#include "summary.hpp"

#include <arpa/inet.h>

#include <cstdio>
#include <ctime>

#include "epair/ethernet.hpp"

namespace epair::pcap {

namespace {

using Bytes = std::span<const std::uint8_t>;

std::uint16_t be16(Bytes b, std::size_t at) { return ethernet::load_be16(&b[at]); }
std::uint32_t be32(Bytes b, std::size_t at) { return ethernet::load_be32(&b[at]); }

std::string mac(Bytes b, std::size_t at) {
  char text[18];
  std::snprintf(text, sizeof text, "%02x:%02x:%02x:%02x:%02x:%02x", b[at], b[at + 1], b[at + 2], b[at + 3], b[at + 4],
                b[at + 5]);
  return text;
}

std::string address(int family, const std::uint8_t* bytes) {
  char text[INET6_ADDRSTRLEN];
  return ::inet_ntop(family, bytes, text, sizeof text) != nullptr ? text : "?";
}

std::string tcp_flags(std::uint8_t flags) {
  std::string out;
  if (flags & 0x02) out += 'S';
  if (flags & 0x01) out += 'F';
  if (flags & 0x04) out += 'R';
  if (flags & 0x08) out += 'P';
  if (flags & 0x10) out += '.';
  return out.empty() ? "none" : out;
}

// After "src > dst": the transport's part of the line.
std::string transport(int protocol, Bytes l4, const std::string& src, const std::string& dst, std::size_t length) {
  if ((protocol == 6 && l4.size() >= 14) || (protocol == 17 && l4.size() >= 8)) {
    std::string line = src + "." + std::to_string(be16(l4, 0)) + " > " + dst + "." + std::to_string(be16(l4, 2)) + ": ";
    if (protocol == 17) return line + "UDP, length " + std::to_string(be16(l4, 4) >= 8 ? be16(l4, 4) - 8 : 0);
    const std::size_t header = static_cast<std::size_t>(l4[12] >> 4) * 4;
    return line + "Flags [" + tcp_flags(l4[13]) + "], seq " + std::to_string(be32(l4, 4)) + ", length " +
           std::to_string(length > header ? length - header : 0);
  }
  std::string line = src + " > " + dst + ": ";
  if (protocol == 1 && l4.size() >= 8) {
    switch (l4[0]) {
      case 8:
      case 0:
        return line + "ICMP echo " + (l4[0] == 8 ? "request" : "reply") + ", id " + std::to_string(be16(l4, 4)) +
               ", seq " + std::to_string(be16(l4, 6)) + ", length " + std::to_string(length);
      case 3:
        return line + "ICMP unreachable, code " + std::to_string(l4[1]);
      default:
        return line + "ICMP type " + std::to_string(l4[0]) + ", length " + std::to_string(length);
    }
  }
  if (protocol == 58 && !l4.empty()) {
    switch (l4[0]) {
      case 128:
        return line + "ICMP6, echo request, id " + std::to_string(l4.size() >= 8 ? be16(l4, 4) : 0) + ", seq " +
               std::to_string(l4.size() >= 8 ? be16(l4, 6) : 0) + ", length " + std::to_string(length);
      case 129:
        return line + "ICMP6, echo reply, id " + std::to_string(l4.size() >= 8 ? be16(l4, 4) : 0) + ", seq " +
               std::to_string(l4.size() >= 8 ? be16(l4, 6) : 0) + ", length " + std::to_string(length);
      case 133:
        return line + "ICMP6, router solicitation, length " + std::to_string(length);
      case 135:
        return line + "ICMP6, neighbor solicitation, length " + std::to_string(length);
      case 136:
        return line + "ICMP6, neighbor advertisement, length " + std::to_string(length);
      case 143:
        return line + "ICMP6, multicast listener report v2, length " + std::to_string(length);
      default:
        return line + "ICMP6, type " + std::to_string(l4[0]) + ", length " + std::to_string(length);
    }
  }
  return line + "ip-proto-" + std::to_string(protocol) + " " + std::to_string(length);
}

std::string ipv4(Bytes ip) {
  if (ip.size() < 20 || ip[0] >> 4 != 4) return "IPv4, truncated";
  const std::size_t header = static_cast<std::size_t>(ip[0] & 0x0f) * 4;
  const std::string src = address(AF_INET, &ip[12]), dst = address(AF_INET, &ip[16]);
  const std::size_t total = be16(ip, 2);
  const bool first_fragment = (be16(ip, 6) & 0x1fff) == 0;
  if (header < 20 || ip.size() < header || !first_fragment)
    return src + " > " + dst + ": ip-proto-" + std::to_string(ip[9]);
  return transport(ip[9], ip.subspan(header), src, dst, total > header ? total - header : 0);
}

std::string ipv6(Bytes ip) {
  if (ip.size() < 40 || ip[0] >> 4 != 6) return "IPv6, truncated";
  return transport(ip[6], ip.subspan(40), address(AF_INET6, &ip[8]), address(AF_INET6, &ip[24]), be16(ip, 4));
}

std::string arp(Bytes a) {
  if (a.size() < 28 || be16(a, 0) != 1 || be16(a, 2) != ethernet::kTypeIpv4) return "ARP";
  const std::string sender = address(AF_INET, &a[14]), target = address(AF_INET, &a[24]);
  switch (be16(a, 6)) {
    case 1:
      return "Request who-has " + target + " tell " + sender;
    case 2:
      return "Reply " + sender + " is-at " + mac(a, 8);
    default:
      return "ARP, opcode " + std::to_string(be16(a, 6));
  }
}

}  // namespace

std::string summarize(Bytes data, std::uint32_t wire_length) {
  if (data.size() < ethernet::kHeaderSize) return "truncated frame, length " + std::to_string(wire_length);
  std::string line = mac(data, 6) + " > " + mac(data, 0) + ", ";
  std::size_t at = ethernet::kTypeOffset;
  std::uint16_t type = be16(data, at);
  while ((type == ethernet::kTypeVlan || type == ethernet::kTypeQinQ) && data.size() >= at + 6) {
    line += "vlan " + std::to_string(be16(data, at + 2) & 0x0fff) + ", ";
    at += 4;
    type = be16(data, at);
  }
  const Bytes payload = data.subspan(at + 2);
  const std::string length = ", length " + std::to_string(wire_length) + ": ";
  switch (type) {
    case ethernet::kTypeIpv4:
      return line + "IPv4" + length + ipv4(payload);
    case ethernet::kTypeIpv6:
      return line + "IPv6" + length + ipv6(payload);
    case ethernet::kTypeArp:
      return line + "ARP" + length + arp(payload);
    default: {
      char text[32];
      std::snprintf(text, sizeof text, "ethertype 0x%04x", type);
      return line + text + ", length " + std::to_string(wire_length);
    }
  }
}

std::string format_time(std::uint64_t timestamp_ns) {
  const auto seconds = static_cast<std::time_t>(timestamp_ns / 1'000'000'000u);
  std::tm local{};
  ::localtime_r(&seconds, &local);
  char text[32];
  std::snprintf(text, sizeof text, "%02d:%02d:%02d.%09llu", local.tm_hour, local.tm_min, local.tm_sec,
                static_cast<unsigned long long>(timestamp_ns % 1'000'000'000u));
  return text;
}

}  // namespace epair::pcap
