#include "netlink.hpp"

#include <arpa/inet.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netlink/addr.h>
#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/veth.h>
#include <netlink/socket.h>

#include <cstring>

namespace epair::os {

int errno_of_nl(int nl_error) {
  switch (nl_error < 0 ? -nl_error : nl_error) {
    case NLE_EXIST:
      return EEXIST;
    case NLE_INVAL:
      return EINVAL;
    case NLE_RANGE:
      return ERANGE;
    case NLE_NOMEM:
      return ENOMEM;
    case NLE_OPNOTSUPP:
      return EOPNOTSUPP;
    case NLE_AF_NOSUPPORT:
      return EAFNOSUPPORT;
    case NLE_OBJ_NOTFOUND:
      return ENOENT;
    case NLE_NODEV:
      return ENODEV;
    case NLE_NOADDR:
      return EADDRNOTAVAIL;
    case NLE_BUSY:
      return EBUSY;
    case NLE_NOACCESS:
      return EACCES;
    case NLE_PERM:
      return EPERM;
    case NLE_AGAIN:
      return EAGAIN;
    case NLE_INTR:
      return EINTR;
    case NLE_MSGSIZE:
      return EMSGSIZE;
    default:
      return EIO;
  }
}

namespace {

Status nl_status(int error, std::string_view name, const char* what) {
  const int e = errno_of_nl(error);
  return Status{e, std::string(name) + ": " + what + ": " + std::strerror(e)};
}

struct LinkDeleter {
  void operator()(rtnl_link* link) const { rtnl_link_put(link); }
};
using LinkPtr = std::unique_ptr<rtnl_link, LinkDeleter>;

struct AddrDeleter {
  void operator()(nl_addr* addr) const { nl_addr_put(addr); }
};
using NlAddrPtr = std::unique_ptr<nl_addr, AddrDeleter>;

Result<nl_sock*> connected_socket() {
  nl_sock* sock = nl_socket_alloc();
  if (sock == nullptr) return Status{ENOMEM, "netlink: out of memory"};
  if (int error = nl_connect(sock, NETLINK_ROUTE); error < 0) {
    nl_socket_free(sock);
    return nl_status(error, "netlink", "connect");
  }
  return sock;
}

std::string format_addr(nl_addr* addr) {
  if (addr == nullptr) return {};
  char text[INET6_ADDRSTRLEN] = {};
  if (inet_ntop(nl_addr_get_family(addr), nl_addr_get_binary_addr(addr), text, sizeof text) == nullptr) return {};
  return text;
}

}  // namespace

void RouteSocket::Deleter::operator()(nl_sock* sock) const { nl_socket_free(sock); }

RouteSocket::~RouteSocket() = default;

Result<RouteSocket> RouteSocket::open() {
  auto sock = connected_socket();
  if (!sock) return sock.status();
  return RouteSocket(*sock);
}

Result<RouteSocket> RouteSocket::open_monitor() {
  nl_sock* sock = nl_socket_alloc();
  if (sock == nullptr) return Status{ENOMEM, "netlink: out of memory"};
  RouteSocket result(sock);
  nl_socket_disable_seq_check(sock);
  if (int error = nl_connect(sock, NETLINK_ROUTE); error < 0) return nl_status(error, "netlink", "connect");
  if (int error = nl_socket_add_memberships(sock, RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR, 0);
      error < 0) {
    return nl_status(error, "netlink", "subscribe");
  }
  nl_socket_set_nonblocking(sock);
  return result;
}

int RouteSocket::fd() const { return nl_socket_get_fd(sock_.get()); }

Result<LinkInfo> RouteSocket::link(std::string_view name) { return link_by(0, std::string(name)); }

Result<LinkInfo> RouteSocket::link(int index) { return link_by(index, {}); }

Result<LinkInfo> RouteSocket::link_by(int index, const std::string& name) {
  rtnl_link* raw = nullptr;
  const std::string what = index != 0 ? "ifindex " + std::to_string(index) : name;
  if (int error = rtnl_link_get_kernel(sock_.get(), index, index != 0 ? nullptr : name.c_str(), &raw); error < 0) {
    if (error == -NLE_OBJ_NOTFOUND || error == -NLE_NODEV) return Status{ENODEV, what + ": no such device"};
    return nl_status(error, what, "RTM_GETLINK");
  }
  LinkPtr link(raw);
  LinkInfo info;
  info.index = rtnl_link_get_ifindex(raw);
  if (const char* current = rtnl_link_get_name(raw); current != nullptr) info.name = current;
  info.flags = rtnl_link_get_flags(raw);
  info.mtu = rtnl_link_get_mtu(raw);
  info.carrier = rtnl_link_get_carrier(raw) != 0;
  if (const char* alias = rtnl_link_get_ifalias(raw); alias != nullptr) info.alias = alias;
  if (nl_addr* mac = rtnl_link_get_addr(raw); mac != nullptr && nl_addr_get_len(mac) == 6) {
    std::memcpy(info.mac.bytes.data(), nl_addr_get_binary_addr(mac), 6);
  }
  info.tx_dropped = rtnl_link_get_stat(raw, RTNL_LINK_TX_DROPPED);
  return info;
}

Status RouteSocket::change(std::string_view name, const char* what, const std::function<void(rtnl_link*)>& edit) {
  rtnl_link* raw = nullptr;
  const std::string n(name);
  if (int error = rtnl_link_get_kernel(sock_.get(), 0, n.c_str(), &raw); error < 0) {
    return Status{ENODEV, n + ": no such device"};
  }
  LinkPtr orig(raw);
  LinkPtr changes(rtnl_link_alloc());
  if (!changes) return Status{ENOMEM, "netlink: out of memory"};
  edit(changes.get());
  if (int error = rtnl_link_change(sock_.get(), orig.get(), changes.get(), 0); error < 0) {
    return nl_status(error, name, what);
  }
  return {};
}

Status RouteSocket::set_up(std::string_view name, bool up) {
  return change(name, "SIOCSIFFLAGS", [up](rtnl_link* link) {
    if (up) {
      rtnl_link_set_flags(link, IFF_UP);
    } else {
      rtnl_link_unset_flags(link, IFF_UP);
    }
  });
}

Status RouteSocket::set_mtu(std::string_view name, std::uint32_t mtu) {
  return change(name, "SIOCSIFMTU", [mtu](rtnl_link* link) { rtnl_link_set_mtu(link, mtu); });
}

Status RouteSocket::set_mac(std::string_view name, const MacAddress& mac) {
  NlAddrPtr addr(nl_addr_build(AF_LLC, mac.bytes.data(), 6));
  if (!addr) return Status{ENOMEM, "netlink: out of memory"};
  return change(name, "SIOCSIFLLADDR", [&addr](rtnl_link* link) { rtnl_link_set_addr(link, addr.get()); });
}

Status RouteSocket::set_name(std::string_view name, const std::string& new_name) {
  return change(name, "SIOCSIFNAME", [&new_name](rtnl_link* link) { rtnl_link_set_name(link, new_name.c_str()); });
}

Status RouteSocket::set_alias(std::string_view name, const std::string& alias) {
  return change(name, "SIOCSIFDESCR", [&alias](rtnl_link* link) { rtnl_link_set_ifalias(link, alias.c_str()); });
}

Status RouteSocket::set_tx_queue_length(std::string_view name, std::uint32_t frames) {
  return change(name, "SIOCSIFTXQLEN", [frames](rtnl_link* link) { rtnl_link_set_txqlen(link, frames); });
}

Status RouteSocket::set_group(std::string_view name, std::uint32_t group) {
  return change(name, "IFLA_GROUP", [group](rtnl_link* link) { rtnl_link_set_group(link, group); });
}

Status RouteSocket::move(std::string_view name, int netns_fd) {
  return change(name, "SIOCSIFVNET", [netns_fd](rtnl_link* link) { rtnl_link_set_ns_fd(link, netns_fd); });
}

Status RouteSocket::add_veth(std::string_view name, std::string_view peer_name, int peer_netns_fd, int ifindex) {
  LinkPtr link(rtnl_link_veth_alloc());
  if (!link) return Status{ENOMEM, "netlink: out of memory"};
  rtnl_link_set_name(link.get(), std::string(name).c_str());
  if (ifindex != 0) rtnl_link_set_ifindex(link.get(), ifindex);
  rtnl_link* peer = rtnl_link_veth_get_peer(link.get());
  rtnl_link_set_name(peer, std::string(peer_name).c_str());
  rtnl_link_set_ns_fd(peer, peer_netns_fd);
  rtnl_link_put(peer);
  if (int error = rtnl_link_add(sock_.get(), link.get(), NLM_F_CREATE | NLM_F_EXCL); error < 0) {
    Status failed = nl_status(error, name, "RTM_NEWLINK veth");
    // Linux takes a request naming the index of a device for one about that
    // device, and says EEXIST as for a name taken: told apart, so that a
    // caller trying name after name on EEXIST (epair create) stops here.
    if (failed.value() == EEXIST && ifindex != 0 && this->link(ifindex)) {
      return Status{EBUSY, std::string(name) + ": interface index " + std::to_string(ifindex) + " is taken"};
    }
    return failed;
  }
  return {};
}

Status RouteSocket::remove(std::string_view name) {
  LinkPtr link(rtnl_link_alloc());
  if (!link) return Status{ENOMEM, "netlink: out of memory"};
  rtnl_link_set_name(link.get(), std::string(name).c_str());
  if (int error = rtnl_link_delete(sock_.get(), link.get()); error < 0) return nl_status(error, name, "RTM_DELLINK");
  return {};
}

Status RouteSocket::remove_group(std::uint32_t group) {
  const std::string what = "group " + std::to_string(group);
  // libnl's rtnl_link_delete() names one device; the group goes as an
  // attribute of a request that names none.
  std::unique_ptr<nl_msg, void (*)(nl_msg*)> msg(nlmsg_alloc_simple(RTM_DELLINK, 0), nlmsg_free);
  if (!msg) return Status{ENOMEM, "netlink: out of memory"};
  ifinfomsg header{};
  header.ifi_family = AF_UNSPEC;
  if (int error = nlmsg_append(msg.get(), &header, sizeof header, NLMSG_ALIGNTO); error < 0) {
    return nl_status(error, what, "RTM_DELLINK");
  }
  if (int error = nla_put_u32(msg.get(), IFLA_GROUP, group); error < 0) return nl_status(error, what, "RTM_DELLINK");
  if (int error = nl_send_sync(sock_.get(), msg.release()); error < 0) return nl_status(error, what, "RTM_DELLINK");
  return {};
}

namespace {

// "A/L" or A alone (/32, /128) of family, or why not.
Result<NlAddrPtr> parse_address(std::string_view name, int family, std::string_view cidr, const char* what) {
  std::string text(cidr);
  nl_addr* parsed = nullptr;
  if (nl_addr_parse(text.c_str(), family, &parsed) < 0 || nl_addr_get_family(parsed) != family) {
    if (parsed != nullptr) nl_addr_put(parsed);
    return Status{EINVAL, std::string(name) + ": " + what + ": invalid address '" + text + "'"};
  }
  NlAddrPtr local(parsed);
  if (text.find('/') == std::string::npos) nl_addr_set_prefixlen(local.get(), family == AF_INET ? 32 : 128);
  return local;
}

}  // namespace

Status RouteSocket::change_address(int ifindex, int family, nl_addr* local, bool add, std::string_view name,
                                   const char* what) {
  std::unique_ptr<rtnl_addr, void (*)(rtnl_addr*)> addr(rtnl_addr_alloc(), rtnl_addr_put);
  if (!addr) return Status{ENOMEM, "netlink: out of memory"};
  rtnl_addr_set_ifindex(addr.get(), ifindex);
  rtnl_addr_set_family(addr.get(), family);
  if (int error = rtnl_addr_set_local(addr.get(), local); error < 0) return nl_status(error, name, what);
  const int prefix = nl_addr_get_prefixlen(local);
  rtnl_addr_set_prefixlen(addr.get(), prefix);
  if (add && family == AF_INET && prefix < 31) {
    // ifconfig sets the broadcast address of the subnet, as `ip addr add ... brd +` does.
    std::uint32_t host = 0;
    std::memcpy(&host, nl_addr_get_binary_addr(local), 4);
    const std::uint32_t mask = prefix == 0 ? 0 : htonl(~0u << (32 - prefix));
    const std::uint32_t bcast = (host & mask) | ~mask;
    NlAddrPtr brd(nl_addr_build(AF_INET, &bcast, 4));
    rtnl_addr_set_broadcast(addr.get(), brd.get());
  }
  const int error =
      add ? rtnl_addr_add(sock_.get(), addr.get(), NLM_F_REPLACE) : rtnl_addr_delete(sock_.get(), addr.get(), 0);
  return error < 0 ? nl_status(error, name, what) : Status{};
}

Status RouteSocket::add_address(std::string_view name, int family, std::string_view cidr) {
  const char* what = family == AF_INET ? "SIOCAIFADDR" : "SIOCAIFADDR_IN6";
  auto local = parse_address(name, family, cidr, what);
  if (!local) return local.status();
  auto info = link(name);
  if (!info) return info.status();
  auto existing = addresses(info->index);
  if (!existing) return existing.status();
  // Linux keeps an address under two prefixes as two; FreeBSD changes the
  // one it has.
  const std::string text = format_addr(local->get());
  const int prefix = nl_addr_get_prefixlen(local->get());
  for (const AddressInfo& old : *existing) {
    if (old.family != family || old.local != text || old.prefix_length == prefix) continue;
    NlAddrPtr stale(nl_addr_clone(local->get()));
    nl_addr_set_prefixlen(stale.get(), old.prefix_length);
    if (Status s = change_address(info->index, family, stale.get(), false, name, what); !s) return s;
  }
  return change_address(info->index, family, local->get(), true, name, what);
}

Status RouteSocket::remove_address(std::string_view name, int family, std::string_view address) {
  const char* what = family == AF_INET ? "SIOCDIFADDR" : "SIOCDIFADDR_IN6";
  auto local = parse_address(name, family, address, what);
  if (!local) return local.status();
  const bool any_prefix = address.find('/') == std::string_view::npos;
  auto info = link(name);
  if (!info) return info.status();
  auto existing = addresses(info->index);
  if (!existing) return existing.status();
  const std::string text = format_addr(local->get());
  bool found = false;
  for (const AddressInfo& old : *existing) {
    if (old.family != family || old.local != text) continue;
    if (!any_prefix && old.prefix_length != static_cast<int>(nl_addr_get_prefixlen(local->get()))) continue;
    NlAddrPtr match(nl_addr_clone(local->get()));
    nl_addr_set_prefixlen(match.get(), old.prefix_length);
    if (Status s = change_address(info->index, family, match.get(), false, name, what); !s) return s;
    found = true;
  }
  if (!found) return Status{EADDRNOTAVAIL, std::string(name) + ": " + what + ": Can't assign requested address"};
  return {};
}

Result<std::map<int, std::vector<AddressInfo>>> RouteSocket::addresses_by_link() {
  nl_cache* cache = nullptr;
  if (int error = rtnl_addr_alloc_cache(sock_.get(), &cache); error < 0) {
    return nl_status(error, "netlink", "RTM_GETADDR");
  }
  std::map<int, std::vector<AddressInfo>> result;
  for (nl_object* obj = nl_cache_get_first(cache); obj != nullptr; obj = nl_cache_get_next(obj)) {
    auto* addr = reinterpret_cast<rtnl_addr*>(obj);
    AddressInfo info;
    info.family = rtnl_addr_get_family(addr);
    info.local = format_addr(rtnl_addr_get_local(addr));
    info.prefix_length = rtnl_addr_get_prefixlen(addr);
    if (info.family == AF_INET) info.broadcast = format_addr(rtnl_addr_get_broadcast(addr));
    info.scope = rtnl_addr_get_scope(addr);
    result[rtnl_addr_get_ifindex(addr)].push_back(std::move(info));
  }
  nl_cache_free(cache);
  return result;
}

Result<std::vector<AddressInfo>> RouteSocket::addresses(int ifindex) {
  auto all = addresses_by_link();
  if (!all) return all.status();
  auto it = all->find(ifindex);
  return it == all->end() ? std::vector<AddressInfo>{} : std::move(it->second);
}

namespace {

int note_link(nl_msg* msg, void* arg) {
  const nlmsghdr* hdr = nlmsg_hdr(msg);
  auto& events = *static_cast<LinkEvents*>(arg);
  if ((hdr->nlmsg_type == RTM_NEWLINK || hdr->nlmsg_type == RTM_DELLINK) &&
      static_cast<std::size_t>(nlmsg_datalen(hdr)) >= sizeof(ifinfomsg)) {
    events.ifindexes.insert(static_cast<const ifinfomsg*>(nlmsg_data(hdr))->ifi_index);
  } else if ((hdr->nlmsg_type == RTM_NEWADDR || hdr->nlmsg_type == RTM_DELADDR) &&
             static_cast<std::size_t>(nlmsg_datalen(hdr)) >= sizeof(ifaddrmsg)) {
    events.ifindexes.insert(static_cast<int>(static_cast<const ifaddrmsg*>(nlmsg_data(hdr))->ifa_index));
  }
  return NL_OK;
}

}  // namespace

bool RouteSocket::drain_events(LinkEvents& events) {
  nl_socket_modify_cb(sock_.get(), NL_CB_VALID, NL_CB_CUSTOM, note_link, &events);
  for (;;) {
    int error = nl_recvmsgs_default(sock_.get());
    if (error >= 0) continue;
    if (error == -NLE_AGAIN) return true;
    // A full receive buffer (ENOBUFS) loses events: the caller must read
    // everything again.
    events.lost = true;
    return error == -NLE_NOMEM || error == -NLE_MSG_OVERFLOW;
  }
}

std::vector<std::string> cidrs_of(const std::vector<AddressInfo>& addresses) {
  std::vector<std::string> result;
  result.reserve(addresses.size());
  for (const auto& a : addresses) result.push_back(a.local + "/" + std::to_string(a.prefix_length));
  return result;
}

}  // namespace epair::os
