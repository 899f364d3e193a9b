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

Status set_tx_checksum(std::string_view ifname, bool on) {
  const std::string name(ifname);
  if (name.size() >= IFNAMSIZ) return Status{ENAMETOOLONG, name + ": name too long"};
  UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd) return Status{errno, name + ": socket: " + std::strerror(errno)};
  ethtool_value value{};
  value.cmd = ETHTOOL_STXCSUM;
  value.data = on ? 1 : 0;
  ifreq request{};
  std::memcpy(request.ifr_name, name.c_str(), name.size() + 1);
  request.ifr_data = reinterpret_cast<char*>(&value);
  if (::ioctl(fd.get(), SIOCETHTOOL, &request) != 0) {
    return Status{errno, name + ": ETHTOOL_STXCSUM: " + std::strerror(errno)};
  }
  return {};
}

}  // namespace epair::os
