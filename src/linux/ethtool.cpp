#include "ethtool.hpp"

#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cstring>
#include <string>

#include "unique_fd.hpp"

namespace epair::os {

namespace {

// One SIOCETHTOOL request with an ethtool_value.
Status ethtool_value_request(const std::string& name, ethtool_value& value, const char* what) {
  if (name.size() >= IFNAMSIZ) return Status{ENAMETOOLONG, name + ": name too long"};
  UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd) return Status{errno, name + ": socket: " + std::strerror(errno)};
  ifreq request{};
  std::memcpy(request.ifr_name, name.c_str(), name.size() + 1);
  request.ifr_data = reinterpret_cast<char*>(&value);
  if (::ioctl(fd.get(), SIOCETHTOOL, &request) != 0)
    return Status{errno, name + ": " + what + ": " + std::strerror(errno)};
  return {};
}

}  // namespace

Status set_tx_checksum(std::string_view ifname, bool on) {
  ethtool_value value{};
  value.cmd = ETHTOOL_STXCSUM;
  value.data = on ? 1 : 0;
  return ethtool_value_request(std::string(ifname), value, "ETHTOOL_STXCSUM");
}

// The flags word carries other offloads too: read, one bit changed, written.
Status set_tx_vlan_offload(std::string_view ifname, bool on) {
  const std::string name(ifname);
  ethtool_value value{};
  value.cmd = ETHTOOL_GFLAGS;
  if (Status s = ethtool_value_request(name, value, "ETHTOOL_GFLAGS"); !s) return s;
  const std::uint32_t flags = on ? value.data | ETH_FLAG_TXVLAN : value.data & ~std::uint32_t{ETH_FLAG_TXVLAN};
  if (flags == value.data) return {};
  value.cmd = ETHTOOL_SFLAGS;
  value.data = flags;
  return ethtool_value_request(name, value, "ETHTOOL_SFLAGS");
}

}  // namespace epair::os
