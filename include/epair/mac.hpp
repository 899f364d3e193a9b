// Ethernet addresses and the two ways epair makes them (SPEC.md "Addresses").
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace epair {

struct MacAddress {
  std::array<std::uint8_t, 6> bytes{};

  /// Parses "02:1e:66:05:b0:0a" (also with '-' separators, any case).
  static std::optional<MacAddress> parse(std::string_view text);
  /// Lower-case, colon-separated, as ifconfig prints it.
  std::string to_string() const;

  bool is_multicast() const { return (bytes[0] & 0x01) != 0; }
  bool is_broadcast() const;
  bool is_zero() const;
  bool is_locally_administered() const { return (bytes[0] & 0x02) != 0; }

  friend bool operator==(const MacAddress&, const MacAddress&) = default;
};

enum class MacMode {
  /// FreeBSD before 15: 02 + Jenkins hash of {index, hostid} + 0a/0b. A
  /// re-created pair gets a new address because the index only grows.
  kLegacy,
  /// FreeBSD 15 (ether_gen_addr): derived from the interface name and the
  /// host, so a re-created pair gets the same addresses again. Uses the
  /// locally administered prefix 06 instead of FreeBSD's OUI.
  kStable,
};

/// Bob Jenkins' lookup3 hashword(), FreeBSD's jenkins_hash32().
std::uint32_t jenkins_hash32(const std::uint32_t* key, std::size_t count, std::uint32_t initval);

/// The legacy address of side a for the given index and host id; side b is
/// the same with its last byte 0x0b.
MacAddress legacy_mac(std::uint32_t index, std::uint64_t host_id);

/// The stable address of the interface called name on the given host.
MacAddress stable_mac(std::string_view name, std::uint64_t host_id);

/// A host id from /etc/machine-id, or 0 when there is none.
std::uint64_t system_host_id();

}  // namespace epair
