// What the example programs answer as a minimal IPv4 host: an ARP request
// for its address and an ICMP echo request (ping) to it, each turned into
// its reply in place, so the same buffer goes back out.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "epair/ethernet.hpp"
#include "epair/mac.hpp"

namespace epair::tools {

inline constexpr std::size_t kIpHeaderSize = 20;
inline constexpr std::size_t kArpSize = 28;
inline constexpr std::uint8_t kIcmpEchoReply = 0;
inline constexpr std::uint8_t kIcmpEchoRequest = 8;

inline void swap_bytes(std::uint8_t* a, std::uint8_t* b, std::size_t n) {
  std::uint8_t tmp[16];
  std::memcpy(tmp, a, n);
  std::memcpy(a, b, n);
  std::memcpy(b, tmp, n);
}

/// An ARP request for `ip` becomes the reply from `mac`. False, and the
/// frame untouched, for anything else.
inline bool answer_arp(std::uint8_t* frame, std::size_t size, std::uint32_t ip, const MacAddress& mac) {
  if (size < ethernet::kHeaderSize + kArpSize ||
      ethernet::load_be16(frame + ethernet::kTypeOffset) != ethernet::kTypeArp)
    return false;
  std::uint8_t* arp = frame + ethernet::kHeaderSize;
  if (ethernet::load_be16(arp + 6) != 1 || ethernet::load_be32(arp + 24) != ip) return false;
  std::memcpy(frame, frame + 6, 6);
  std::memcpy(frame + 6, mac.bytes.data(), 6);
  ethernet::store_be16(arp + 6, 2);
  swap_bytes(arp + 8, arp + 18, 10);  // sender and target, hardware and protocol address
  std::memcpy(arp + 8, mac.bytes.data(), 6);
  return true;
}

/// An ICMP echo request to `ip` becomes its echo reply. False, and the
/// frame untouched, for anything else.
inline bool answer_echo(std::uint8_t* frame, std::size_t size, std::uint32_t ip) {
  if (size < ethernet::kHeaderSize + kIpHeaderSize + 8 ||
      ethernet::load_be16(frame + ethernet::kTypeOffset) != ethernet::kTypeIpv4) {
    return false;
  }
  std::uint8_t* header = frame + ethernet::kHeaderSize;
  const std::size_t header_size = std::size_t{header[0] & 0x0fu} * 4;
  const std::size_t total = ethernet::load_be16(header + 2);
  if (header[0] >> 4 != 4 || header_size < kIpHeaderSize || total < header_size + 8 ||
      ethernet::kHeaderSize + total > size || header[9] != ethernet::kProtoIcmp ||
      ethernet::load_be32(header + 16) != ip) {
    return false;
  }
  std::uint8_t* icmp = header + header_size;
  if (icmp[0] != kIcmpEchoRequest) return false;
  swap_bytes(frame, frame + 6, 6);
  swap_bytes(header + 12, header + 16, 4);
  header[8] = 64;
  ethernet::store_be16(header + 10, 0);
  ethernet::store_be16(header + 10, ethernet::internet_checksum({header, header_size}));
  icmp[0] = kIcmpEchoReply;
  ethernet::store_be16(icmp + 2, 0);
  ethernet::store_be16(icmp + 2, ethernet::internet_checksum({icmp, total - header_size}));
  return true;
}

}  // namespace epair::tools
