// A Linux device's offloads, switched as `ethtool -K` switches them
// (SIOCETHTOOL).
//
// Guarantees:
// - Each call acts on the device of that name in the calling thread's
//   network namespace (os::run_in_netns() picks another).
// - Linux drops what depends on a feature turned off (segmentation offload
//   needs transmit checksum offload) and brings it back when it is on again.
#pragma once

#include <string_view>

#include "epair/status.hpp"

namespace epair::os {

/// Transmit checksum offload, for IPv4 and IPv6 at once: off, the stack
/// fills in every checksum before the device sees the frame.
Status set_tx_checksum(std::string_view ifname, bool on);
/// VLAN tag insertion offload (`ethtool -K IFNAME txvlan`): off, the stack
/// writes a VLAN tag into the frame instead of handing it over beside it.
Status set_tx_vlan_offload(std::string_view ifname, bool on);

}  // namespace epair::os
