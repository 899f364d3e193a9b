// Linux network namespaces as epair's vnets: named ones (`ip netns`, under
// /run/netns) and those of a process (/proc/PID/ns/net).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "epair/status.hpp"
#include "unique_fd.hpp"

namespace epair::os {

/// Where `ip netns` keeps its names; overridable for tests.
std::string netns_dir();

/// What a namespace is, independent of how it was named: its nsfs inode.
struct NetnsId {
  std::uint64_t dev = 0;
  std::uint64_t ino = 0;
  friend bool operator==(const NetnsId&, const NetnsId&) = default;
};

/// A namespace as the user named it: "ns1" (ip netns) or "1234" (a pid).
struct NetnsSpec {
  std::string name;  ///< the vnet name epair uses: "ns1" or "pid:1234"
  std::string path;  ///< /run/netns/ns1 or /proc/1234/ns/net
  pid_t pid = 0;     ///< non-zero for a process's namespace
};

/// Parses a `vnet` argument: a number is a pid, anything else an ip-netns
/// name. EINVAL for a name that cannot be one (empty, '/', "." or "..").
Result<NetnsSpec> parse_netns(std::string_view text);
/// The spec of a vnet name made by parse_netns ("pid:1234" or "ns1").
NetnsSpec spec_of_vnet(std::string_view vnet);

/// Opens the namespace; ENOENT (with "namespace NAME does not exist") when
/// it is not there.
Result<UniqueFd> open_netns(const NetnsSpec& spec);
/// The identity of an open namespace descriptor.
Result<NetnsId> netns_id(int fd);
/// The identity of the namespace at spec's path now; ENOENT when gone.
Result<NetnsId> netns_id(const NetnsSpec& spec);

/// The `ip netns` name of the namespace id, if it has one.
std::optional<std::string> named_netns(const NetnsId& id);

/// Runs fn on a fresh thread that has entered the namespace of netns_fd and
/// returns its result. Sockets that fn opens belong to that namespace and may
/// be used from any thread afterwards.
Status run_in_netns(int netns_fd, const std::function<Status()>& fn);

}  // namespace epair::os
