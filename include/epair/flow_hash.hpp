// The flow hash that picks a receive queue when a side has several (RSS).
#pragma once

#include <cstdint>
#include <optional>
#include <span>

namespace epair {

/// A hash of the IPv4 or IPv6 5-tuple (addresses, protocol, and ports for
/// TCP, UDP, SCTP and UDP-Lite) of an Ethernet frame, looking through one or
/// two VLAN tags. Fragments after the first and unknown protocols hash the
/// addresses and protocol only. nullopt for anything that is not IP, or is
/// too short to read; such frames go to queue 0.
std::optional<std::uint32_t> flow_hash(std::span<const std::uint8_t> frame);

}  // namespace epair
