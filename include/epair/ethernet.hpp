// Wire constants, big-endian field access and the Internet checksum, shared
// by everything that reads or writes frames: the engine, endpoints, captures
// and tools.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace epair::ethernet {

inline constexpr std::size_t kHeaderSize = 14;
inline constexpr std::size_t kAddressSize = 6;
/// Offset of the EtherType (or of the first VLAN tag's TPID).
inline constexpr std::size_t kTypeOffset = 12;

inline constexpr std::uint16_t kTypeIpv4 = 0x0800;
inline constexpr std::uint16_t kTypeArp = 0x0806;
inline constexpr std::uint16_t kTypeVlan = 0x8100;
inline constexpr std::uint16_t kTypeQinQ = 0x88a8;
inline constexpr std::uint16_t kTypeIpv6 = 0x86dd;

inline constexpr std::uint8_t kProtoIcmp = 1;
inline constexpr std::uint8_t kProtoTcp = 6;
inline constexpr std::uint8_t kProtoUdp = 17;
inline constexpr std::uint8_t kProtoSctp = 132;
inline constexpr std::uint8_t kProtoUdpLite = 136;

/// Reads a 16-bit field in network byte order.
inline std::uint16_t load_be16(const std::uint8_t* p) { return static_cast<std::uint16_t>(p[0] << 8 | p[1]); }
/// Writes a 16-bit field in network byte order.
inline void store_be16(std::uint8_t* p, std::uint16_t value) {
  p[0] = static_cast<std::uint8_t>(value >> 8);
  p[1] = static_cast<std::uint8_t>(value);
}

/// Reads a 32-bit field in network byte order.
inline std::uint32_t load_be32(const std::uint8_t* p) {
  return std::uint32_t{p[0]} << 24 | std::uint32_t{p[1]} << 16 | std::uint32_t{p[2]} << 8 | p[3];
}

/// Adds bytes to a one's-complement sum as big-endian 16-bit words (RFC
/// 1071); an odd last byte is the high half of a word. Fold the result.
inline std::uint64_t add_words(std::span<const std::uint8_t> bytes, std::uint64_t sum = 0) {
  std::size_t i = 0;
  for (; i + 1 < bytes.size(); i += 2) sum += load_be16(&bytes[i]);
  if (i < bytes.size()) sum += std::uint32_t{bytes[i]} << 8;
  return sum;
}

/// Folds a one's-complement sum into 16 bits, not complemented.
inline std::uint16_t fold_sum(std::uint64_t sum) {
  while ((sum >> 16) != 0) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<std::uint16_t>(sum);
}

/// The Internet checksum of bytes: what goes into an IPv4 or ICMP header's
/// checksum field (zero there while it is computed).
inline std::uint16_t internet_checksum(std::span<const std::uint8_t> bytes) {
  return static_cast<std::uint16_t>(~fold_sum(add_words(bytes)));
}

}  // namespace epair::ethernet
