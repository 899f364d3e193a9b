// Wire constants and big-endian field access shared by everything that reads
// or writes frames: the engine, endpoints and tools.
#pragma once

#include <cstddef>
#include <cstdint>

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

}  // namespace epair::ethernet
