#include "views.hpp"

#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include <cstdio>
#include <string>
#include <vector>

#include "epair/impairment.hpp"

namespace epair::daemon {

namespace {

// ifconfig's extra lines of a view, made beside its JSON.
using Lines = std::vector<std::string>;

std::string netmask_hex(int prefix) {
  const std::uint32_t mask = prefix == 0 ? 0 : ~0u << (32 - prefix);
  char text[16];
  std::snprintf(text, sizeof text, "0x%08x", mask);
  return text;
}

json counters_json(const InterfaceCounters& c) {
  return {{"ipackets", c.ipackets}, {"ierrors", c.ierrors}, {"opackets", c.opackets}, {"oerrors", c.oerrors},
          {"ibytes", c.ibytes},     {"obytes", c.obytes},   {"imcasts", c.imcasts},   {"omcasts", c.omcasts},
          {"iqdrops", c.iqdrops},   {"oqdrops", c.oqdrops}};
}

json counters_json(const CounterTable& table) {
  json j = json::object();
  for (const CounterTable::Row& row : table.rows) {
    if (!row.info->key.empty()) j[std::string(row.info->key)] = row.value;
  }
  return j;
}

void show_interface(json& j, const Interface& ifp, const InterfaceCounters& counters) {
  j["name"] = ifp.name();
  j["unit"] = ifp.unit();
  j["side"] = std::string(1, ifp.side());
  const auto peer = ifp.peer();
  j["peer"] = peer ? peer->name() : std::string();
  j["vnet"] = ifp.vnet_name();
  j["flags"] = ifp.flags();
  j["flags_text"] = format_flags(ifp.flags());
  j["mtu"] = ifp.mtu();
  j["ether"] = ifp.mac().to_string();
  j["description"] = ifp.description();
  j["options"] = ifp.enabled_capabilities();
  j["options_text"] = format_capabilities(ifp.enabled_capabilities());
  j["groups"] = ifp.groups();
  j["media"] = std::string(Interface::media());
  j["status"] = std::string(ifp.media_status());
  j["counters"] = counters_json(counters);
  j["queue"] = {{"frames", ifp.queued_frames()}, {"capacity", ifp.queue_capacity()}};
}

void show_addresses(json& j, Lines& lines, const std::string& ifname, const std::vector<os::AddressInfo>& addresses) {
  json inet = json::array();
  json inet6 = json::array();
  for (const os::AddressInfo& a : addresses) {
    json address = {{"address", a.local}, {"prefixlen", a.prefix_length}};
    if (a.family == AF_INET) {
      address["netmask"] = netmask_hex(a.prefix_length);
      std::string line = "\tinet " + a.local + " netmask " + netmask_hex(a.prefix_length);
      if (!a.broadcast.empty()) {
        address["broadcast"] = a.broadcast;
        line += " broadcast " + a.broadcast;
      }
      inet.push_back(address);
      lines.push_back(line);
    } else if (a.family == AF_INET6) {
      address["scope"] = a.scope == RT_SCOPE_LINK ? "link" : a.scope == RT_SCOPE_HOST ? "host" : "global";
      inet6.push_back(address);
      lines.push_back("\tinet6 " + a.local + (a.scope == RT_SCOPE_LINK ? "%" + ifname : "") + " prefixlen " +
                      std::to_string(a.prefix_length));
    }
  }
  j["inet"] = inet;
  j["inet6"] = inet6;
}

void show_impairment(json& j, Lines& lines, const Interface& ifp) {
  const auto impairment = ifp.impairment();
  if (!impairment) {
    j["impair"] = nullptr;
    return;
  }
  const ImpairmentConfig& c = *impairment;
  const ImpairmentCounters n = ifp.impairment_counters();
  const std::string text = format_impairment(c);
  const char* distributions[] = {"uniform", "normal", "pareto"};
  json impair = {{"text", text},
                 {"rate_bps", c.rate_bps},
                 {"burst_bytes", c.burst_bytes},
                 {"limit", c.limit},
                 {"delay_ns", c.delay_ns},
                 {"jitter_ns", c.jitter_ns},
                 {"distribution", distributions[static_cast<int>(c.distribution)]},
                 {"loss_percent", c.loss_percent},
                 {"duplicate_percent", c.duplicate_percent},
                 {"corrupt_percent", c.corrupt_percent},
                 {"reorder_percent", c.reorder_percent},
                 {"gap", c.gap},
                 {"seed", c.seed ? json(*c.seed) : json()},
                 {"counters",
                  {{"lost", n.lost},
                   {"duplicated", n.duplicated},
                   {"corrupted", n.corrupted},
                   {"reordered", n.reordered},
                   {"dropped", n.dropped},
                   {"delayed", n.delayed},
                   {"held", n.held}}}};
  if (c.gemodel) {
    impair["gemodel"] = {{"p_percent", c.ge_p_percent},
                         {"r_percent", c.ge_r_percent},
                         {"one_minus_h_percent", c.ge_1h_percent},
                         {"one_minus_k_percent", c.ge_1k_percent}};
  }
  j["impair"] = std::move(impair);
  lines.push_back("\timpair: " + text);
  lines.push_back("\timpaired: " + std::to_string(n.lost) + " lost, " + std::to_string(n.duplicated) + " duplicated, " +
                  std::to_string(n.corrupted) + " corrupted, " + std::to_string(n.reordered) + " reordered, " +
                  std::to_string(n.dropped) + " dropped at the limit, " + std::to_string(n.delayed) + " delayed, " +
                  std::to_string(n.held) + " held");
}

void show_vxlan(json& j, Lines& lines, const vxlan::Endpoint& tunnel) {
  const vxlan::Config& c = tunnel.config();
  const std::string text = vxlan::format_config(c);
  const CounterTable counters = tunnel.counter_table();
  j["vxlan"] = {{"text", text},
                {"remote", c.remote.text},
                {"local", c.local ? json(c.local->text) : json()},
                {"vni", c.vni},
                {"dstport", c.dstport},
                {"srcport", {c.srcport_min, c.srcport_max}},
                {"ttl", c.ttl},
                {"dev", c.dev},
                {"df", c.dont_fragment ? "set" : "unset"},
                {"overhead", c.overhead()},
                {"counters", counters_json(counters)}};
  lines.push_back("\tvxlan: " + text);
  lines.push_back("\tvxlan frames: " + counters.text());
}

void show_memif(json& j, Lines& lines, const memif::Endpoint& peer) {
  const memif::Config& c = peer.config();
  const std::string text = memif::format_config(c, false);
  const CounterTable counters = peer.counter_table();
  const bool connected = peer.connected();
  const std::string name = peer.peer_name();
  const std::string last = peer.last_disconnect();
  const bool relaying = peer.relaying();
  const std::optional<std::uint32_t> relay_buffers = peer.relay_buffers();
  const std::optional<std::uint32_t> relay_buffers_free = peer.relay_buffers_free();
  j["memif"] = {{"text", text},
                {"socket", c.socket},
                {"role", c.role == memif::Role::kServer ? "server" : "client"},
                {"id", c.id},
                {"secret", !c.secret.empty()},
                {"ring_size", c.ring_size()},
                {"buffer_size", c.buffer_size},
                {"queues", c.queues},
                {"rx_mode", c.rx_mode == memif::RxMode::kInterrupt ? "interrupt" : "polling"},
                {"rx_usecs", c.rx_usecs},
                {"flow_control", c.flow_control},
                {"zero_copy", c.zero_copy},
                {"relaying", relaying},
                {"relay_buffers", relay_buffers ? json(*relay_buffers) : json()},
                {"relay_buffers_free", relay_buffers_free ? json(*relay_buffers_free) : json()},
                {"connected", connected},
                {"peer", connected ? json(name) : json()},
                {"last_disconnect", last.empty() ? json() : json(last)},
                {"counters", counters_json(counters)}};
  lines.push_back("\tmemif: " + text);
  lines.push_back(std::string("\tmemif link: ") +
                  (connected ? "connected to " + name
                             : "not connected" + (last.empty() ? std::string() : " (last: " + last + ")")));
  lines.push_back("\tmemif frames: " + counters.text());
  if (c.zero_copy) {
    lines.push_back("\tmemif zero-copy: " + std::string(relaying ? "relaying" : "not relaying") + ", " +
                    std::to_string(counters.value("relayed")) + " frames crossed uncopied; " +
                    std::to_string(relay_buffers_free.value_or(0)) + " of " +
                    std::to_string(relay_buffers.value_or(0)) + " relay buffers free");
  }
}

}  // namespace

json describe_end(const End& end, const std::optional<os::LinkInfo>& link) {
  const Interface& ifp = *end.ifp;
  json j;
  Lines lines;
  // Read once: the JSON and the text show the same figures.
  const InterfaceCounters counters = end.counters();
  show_interface(j, ifp, counters);
  j["datapath"] = end.datapath();
  show_addresses(j, lines, ifp.name(), end.addresses);
  if (link) j["linux"] = {{"ifindex", link->index}, {"flags", link->flags}, {"carrier", link->carrier}};
  show_impairment(j, lines, ifp);
  j["vxlan"] = nullptr;
  j["memif"] = nullptr;
  if (const vxlan::Endpoint* tunnel = end.vxlan()) show_vxlan(j, lines, *tunnel);
  if (const memif::Endpoint* peer = end.memif()) show_memif(j, lines, *peer);
  lines.push_back("\tvnet: " + ifp.vnet_name());
  lines.push_back("\tdatapath: " + end.datapath());
  j["ifconfig"] = format_ifconfig(ifp, lines);
  j["counters_text"] = format_counters(counters);
  return j;
}

}  // namespace epair::daemon
