// rtnetlink through libnl-route-3: the links and addresses of one network
// namespace, and the events that report their changes.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "epair/mac.hpp"
#include "epair/status.hpp"

struct nl_sock;
struct rtnl_link;
struct nl_addr;

namespace epair::os {

struct LinkInfo {
  int index = 0;
  std::string name;
  std::uint32_t flags = 0;  ///< IFF_* as `ip link` shows them
  std::uint32_t mtu = 0;
  MacAddress mac;
  bool carrier = false;
  std::string alias;  ///< IFLA_IFALIAS: epair keeps the description there
  /// What Linux dropped on the way out; a veth counts here what it sent
  /// while its peer was down.
  std::uint64_t tx_dropped = 0;
};

struct AddressInfo {
  int family = 0;  ///< AF_INET or AF_INET6
  std::string local;
  int prefix_length = 0;
  std::string broadcast;  ///< IPv4 only, empty when none
  int scope = 0;          ///< RT_SCOPE_*
};

/// The addresses as "A/L", as `ip` takes them and state.json keeps them.
std::vector<std::string> cidrs_of(const std::vector<AddressInfo>& addresses);

/// What a batch of link and address events named.
struct LinkEvents {
  std::set<int> ifindexes;  ///< the links the events were about
  bool lost = false;        ///< the receive buffer overflowed: some events are gone
};

/// A route netlink socket bound to the namespace of the thread that opened
/// it (see run_in_netns()). Not thread safe: one user at a time.
class RouteSocket {
 public:
  /// Opens a socket in the calling thread's namespace.
  static Result<RouteSocket> open();
  /// Opens a socket that receives link and address events (non-blocking).
  static Result<RouteSocket> open_monitor();

  RouteSocket(RouteSocket&&) noexcept = default;
  RouteSocket& operator=(RouteSocket&&) noexcept = default;
  ~RouteSocket();

  int fd() const;

  /// ENODEV when name is not a link of this namespace.
  Result<LinkInfo> link(std::string_view name);
  /// The link of that index now, whatever its name.
  Result<LinkInfo> link(int index);
  Status set_up(std::string_view name, bool up);
  Status set_mtu(std::string_view name, std::uint32_t mtu);
  /// The length of the device's transmit queue (txqueuelen), in frames.
  Status set_tx_queue_length(std::string_view name, std::uint32_t frames);
  /// The device group (`ip link set NAME group N`), for remove_group().
  Status set_group(std::string_view name, std::uint32_t group);
  Status set_mac(std::string_view name, const MacAddress& mac);
  /// The link's alias (`ip link set NAME alias TEXT`); empty clears it.
  Status set_alias(std::string_view name, const std::string& alias);
  /// `ip link set NAME name NEW_NAME`; Linux renames only a device that is
  /// down (EBUSY), and EEXIST when the name is taken.
  Status set_name(std::string_view name, const std::string& new_name);
  /// Moves the link into the namespace of netns_fd.
  Status move(std::string_view name, int netns_fd);
  /// A veth pair: name here, peer_name in the namespace of peer_netns_fd,
  /// both down; name at ifindex when it is not 0. EEXIST when either name
  /// is taken, EBUSY when the index is.
  Status add_veth(std::string_view name, std::string_view peer_name, int peer_netns_fd, int ifindex = 0);
  Status remove(std::string_view name);
  /// Every device of group (not 0) in one batch (`ip link delete group
  /// N`): the kernel waits for the other CPUs once for all of them, not
  /// once a device; a veth's peer goes in the batch too. ENODEV when the
  /// group has none.
  Status remove_group(std::uint32_t group);

  /// Adds "A/L" (or A alone: /32, /128) of family AF_INET or AF_INET6.
  /// An address the link has already is changed, as FreeBSD's SIOCAIFADDR
  /// does: under another prefix it is removed first, so that it is kept
  /// once.
  Status add_address(std::string_view name, int family, std::string_view cidr);
  /// Removes A (under any prefix) or "A/L": EADDRNOTAVAIL when the link
  /// has no such address.
  Status remove_address(std::string_view name, int family, std::string_view address);
  Result<std::vector<AddressInfo>> addresses(int ifindex);
  /// Every address of the namespace, by link index: one dump.
  Result<std::map<int, std::vector<AddressInfo>>> addresses_by_link();

  /// Reads every pending event, noting the links they name in events;
  /// false when the socket failed.
  bool drain_events(LinkEvents& events);

 private:
  struct Deleter {
    void operator()(nl_sock* sock) const;
  };
  explicit RouteSocket(nl_sock* sock) : sock_(sock) {}
  Status change(std::string_view name, const char* what, const std::function<void(rtnl_link*)>& edit);
  // By index when it is not 0, else by name.
  Result<LinkInfo> link_by(int index, const std::string& name);
  // Adds (or replaces) or deletes local, whose prefix length is set.
  Status change_address(int ifindex, int family, nl_addr* local, bool add, std::string_view name, const char* what);

  std::unique_ptr<nl_sock, Deleter> sock_;
};

/// errno for a libnl error code.
int errno_of_nl(int nl_error);

}  // namespace epair::os
