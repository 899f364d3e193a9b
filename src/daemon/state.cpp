// What the state file holds, and re-adoption from it after a restart or a
// crash: the engine is rebuilt as the file says, each end's persistent TAP
// is attached again in its namespace, and whatever the kernel changed
// meanwhile is read back.
#include <spdlog/spdlog.h>

#include "controller.hpp"

namespace epair::daemon {

std::string Controller::state_text() const {
  json pairs = json::array();
  std::map<int, json> by_unit;
  for (const auto& [name, end] : ends_) {
    const Interface& ifp = *end.ifp;
    json e = {{"name", name},     {"vnet", ifp.vnet_name()},        {"up", ifp.is_up()},
              {"mtu", ifp.mtu()}, {"ether", ifp.mac().to_string()}, {"description", ifp.description()}};
    if (const Netns* ns = netns_->find(ifp.vnet_name()); ns != nullptr && ifp.vnet_name() != kHostVnet) {
      e["netns_dev"] = ns->id.dev;
      e["netns_ino"] = ns->id.ino;
    }
    e["groups"] = ifp.groups();
    e["options"] = ifp.enabled_capabilities();
    e["addresses"] = os::cidrs_of(end.addresses);
    if (auto impairment = ifp.impairment()) e["impair"] = format_impairment(*impairment);
    if (const std::string words = attachment_words(end); !words.empty()) e["attach"] = words;
    e["datapath"] = end.kernel ? "kernel" : "tap";
    e["side"] = std::string(1, ifp.side());
    if (end.kernel) e["hidden"] = end.kernel->hidden_name;
    by_unit[ifp.unit()]["unit"] = ifp.unit();
    by_unit[ifp.unit()]["ends"].push_back(e);
  }
  for (auto& [unit, pair] : by_unit) pairs.push_back(pair);
  const json state = {{"version", kStateVersion}, {"mac_index", engine_->mac_index()}, {"pairs", pairs}};
  return state.dump(2) + "\n";
}

Status Controller::reserve_state() { return state_file_.reserve(state_text()); }

// An epaird from before renames kept no side: the name ended in it.
std::string side_in_state(const json& end) {
  const std::string name = end.value("name", "");
  return end.value("side", name.empty() ? std::string("?") : name.substr(name.size() - 1));
}

// A pair's ends are both on one data path.
PairCounters Controller::saved_engine_counters(const json& pair) const {
  const json ends = pair.value("ends", json::array());
  if (ends.empty() || ends[0].value("datapath", "tap") != "kernel") return file_counters(pair.value("unit", -1));
  PairCounters counters;
  for (const json& e : ends) (side_in_state(e) == "b" ? counters.b : counters.a) = kernel_engine_counters(e);
  return counters;
}

void Controller::save() const { state_file_.save(state_text()); }

// Re-adoption, in this order:
// 1. Each pair of the file is adopted on its own (adopt_pair); one that
//    cannot be is destroyed whole (drop_pair) and the others go on.
// 2. Every namespace is read again: what `ip` changed while epaird was
//    down (UP, MTU, addresses; a device deleted) comes into the model.
// 3. Namespaces no end is in are closed, and the state is saved as it now is.
void Controller::restore() {
  const json state = std::exchange(saved_, json::object());
  for (const json& pair : state.value("pairs", json::array())) {
    const std::string name = "epair" + std::to_string(pair.value("unit", -1));
    if (std::string problem = adopt_pair(pair, name); !problem.empty()) {
      spdlog::error("cannot re-adopt {}: {}; destroying it", name, problem);
      drop_pair(pair, name);
      continue;
    }
    spdlog::info("re-adopted {}", name);
  }
  for (const std::string& vnet : netns_->vnets()) resync(vnet);
  for (auto& [name, end] : ends_) update_way(end);
  release_unused_netns();
  save();
}

std::string Controller::adopt_pair(const json& pair, const std::string& name) {
  if (auto created = engine_->create(name, saved_engine_counters(pair)); !created) return created.status().message();
  int placed = 0;
  for (const json& e : pair.value("ends", json::array())) {
    const std::string ifname = e.value("name", "");
    const std::string vnet = e.value("vnet", std::string(kHostVnet));
    const std::string side = side_in_state(e);
    if (side != "a" && side != "b") return "no side for " + ifname;
    if (Status s = engine_->rename(name + side, ifname); !s) return s.message();
    auto ns = netns_->open(vnet);
    if (!ns) return ns.status().message();
    if (vnet != kHostVnet && !((*ns)->id == os::NetnsId{e.value("netns_dev", 0ULL), e.value("netns_ino", 0ULL)})) {
      std::string problem = "namespace " + vnet;
      problem += " is not the one " + ifname + " was in";
      return problem;
    }
    if (vnet != kHostVnet) {
      if (Status s = engine_->move(ifname, vnet); !s) return s.message();
    }
    ++placed;
    std::optional<tap::Device> device;
    End adopted;
    adopted.ifp = engine_->find(ifname, vnet);
    Status attached = e.value("datapath", "tap") == "kernel"
                          ? adopt_kernel_end(adopted, hidden_name_in_state(e), device)
                          : os::run_in_netns((*ns)->fd.get(), [&]() -> Status {
                              auto tap = tap::Device::attach(ifname);
                              if (!tap) return tap.status();
                              device = std::move(*tap);
                              return {};
                            });
    if (!attached) return attached.message();
    Interface& ifp = *adopted.ifp;
    if (auto mac = MacAddress::parse(e.value("ether", "")); mac) (void)ifp.set_mac(*mac);
    (void)ifp.set_mtu(e.value("mtu", Interface::kDefaultMtu));
    (void)ifp.set_description(e.value("description", ""));
    (void)ifp.set_enabled_capabilities(e.value("options", kDefaultCapabilities));
    if (e.contains("groups")) {
      for (const std::string& group : ifp.groups()) (void)ifp.remove_group(group);
      for (const std::string& group : e.value("groups", std::vector<std::string>{})) (void)ifp.add_group(group);
    }
    (void)ifp.set_up(e.value("up", false));
    End& end = ends_[ifname];
    end = std::move(adopted);
    if (Status s = start_end(end, std::move(*device)); !s) return s.message();
    learn_ifindex(end);
    update_offloads(end);
    if (const std::string words = e.value("impair", ""); !words.empty()) {
      if (Status s = impair(end, words); !s) spdlog::error("{}: impairment not restored: {}", ifname, s.message());
    }
    if (const std::string words = e.value("attach", ""); !words.empty()) {
      if (Status s = attach(end, words); !s) spdlog::error("{}: not attached again: {}", ifname, s.message());
    }
  }
  return placed == 2 ? std::string() : "incomplete record";
}

void Controller::drop_pair(const json& pair, const std::string& name) {
  for (const json& e : pair.value("ends", json::array())) {
    const std::string ifname = e.value("name", "");
    if (End* end = find(ifname)) {
      stop_end(*end);
      (void)end->device().set_persistent(false);
      ends_.erase(ifname);
    }
  }
  for (const json& e : pair.value("ends", json::array())) {
    if (auto ns = netns_->open(e.value("vnet", std::string(kHostVnet))); ns) {
      (void)(*ns)->control->remove(e.value("name", ""));
    }
    if (e.value("datapath", "tap") == "kernel") forget_kernel_devices(hidden_name_in_state(e));
  }
  // The engine's pair, under its names from the file or those it was made
  // with, wherever adopting left it.
  std::vector<std::string> names = {name + "a", name + "b"};
  for (const json& e : pair.value("ends", json::array())) names.push_back(e.value("name", ""));
  for (const std::string& vnet : engine_->vnets()) {
    for (const std::string& ifname : names) {
      auto ifp = engine_->find(ifname, vnet);
      if (ifp && ifp->unit() == pair.value("unit", -1)) {
        (void)engine_->destroy(ifname, vnet);
        return;
      }
    }
  }
}

}  // namespace epair::daemon
