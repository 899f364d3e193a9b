// The settings of a VXLAN end (`epairctl NAME attach vxlan ...`) and the
// VXLAN header of RFC 7348: what the daemon checks before acting, and what
// the endpoint puts before and reads off every frame.
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "epair/status.hpp"

namespace epair::vxlan {

inline constexpr std::uint16_t kDefaultPort = 4789;  // IANA's, not Linux's old 8472
inline constexpr std::uint32_t kMaxVni = (1u << 24) - 1;
inline constexpr std::size_t kHeaderSize = 8;
/// Outer Ethernet + IP + UDP + VXLAN: what the underlay's MTU must hold
/// above an inner frame's IP packet (Linux vxlan's 50 and 70).
inline constexpr std::uint32_t kOverheadIpv4 = 14 + 20 + 8 + 8;
inline constexpr std::uint32_t kOverheadIpv6 = 14 + 40 + 8 + 8;

/// An IPv4 or IPv6 address with its family.
struct Address {
  int family = AF_UNSPEC;
  in6_addr ip6{};  ///< IPv4 in the first four bytes
  std::string text;
  bool operator==(const Address& other) const { return text == other.text; }
};

/// Parses "192.0.2.1" or "2001:db8::1".
std::optional<Address> parse_address(std::string_view text);

struct Config {
  Address remote;
  std::optional<Address> local;
  std::uint32_t vni = 0;
  std::uint16_t dstport = kDefaultPort;
  /// RFC 7348: a hash of the inner frame's flow picks the source port.
  std::uint16_t srcport_min = 49152;
  std::uint16_t srcport_max = 65535;
  /// 0: the system's default.
  std::uint8_t ttl = 0;
  std::string dev;
  /// `df unset`: a datagram larger than the path's MTU is fragmented by
  /// IP instead of dropped and counted as too big.
  bool dont_fragment = true;

  bool operator==(const Config&) const = default;
  std::uint32_t overhead() const { return remote.family == AF_INET6 ? kOverheadIpv6 : kOverheadIpv4; }
};

/// True when the words of an attach start with the kind "vxlan".
inline bool is_vxlan_attach(std::string_view words) {
  return words.starts_with("vxlan") && (words.size() == 5 || words[5] == ' ');
}

/// Parses the words after `attach vxlan`: remote ADDR [local ADDR] [vni N]
/// [dstport N] [srcport MIN MAX] [ttl N] [dev IFACE] [df set|unset]. EINVAL with one line
/// naming the offending word.
Result<Config> parse_config(std::span<const std::string_view> words);
/// The same for the words of one string separated by spaces.
Result<Config> parse_config(std::string_view text);
/// The settings in parse_config()'s words, every one given.
std::string format_config(const Config& config);

/// Writes the 8-byte header for vni.
void write_header(std::uint8_t* out, std::uint32_t vni);

enum class Drop { kNone, kShort, kFlags, kOtherVni, kBadFrame };
/// Checks a datagram: at least a header and an Ethernet header behind it,
/// the I flag set (other flag bits are ignored, as RFC 7348 says), the VNI.
Drop check_datagram(std::span<const std::uint8_t> datagram, std::uint32_t vni);

/// A sender on the same machine (behind a veth, or a VM's virtio device)
/// may leave an inner TCP or UDP checksum to offload: the field holds only
/// the pseudo-header's sum, and a UDP socket cannot say so. When an inner
/// IPv4 or IPv6 TCP/UDP packet's field holds exactly that and the checksum
/// does not verify, fills it in and returns true. A packet that verifies is
/// never touched; one that is neither is left for its receiver to refuse.
bool fill_offloaded_checksum(std::span<std::uint8_t> frame);

}  // namespace epair::vxlan
