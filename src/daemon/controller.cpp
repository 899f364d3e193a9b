#include "controller.hpp"

#include <net/if.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <charconv>

#include "bpf.hpp"
#include "epair/impairment.hpp"
#include "views.hpp"

namespace epair::daemon {

namespace {

std::string pair_name(const Interface& ifp) { return "epair" + std::to_string(ifp.unit()); }

EngineConfig continued(EngineConfig config, const json& state) {
  config.mac_index_start = state.value("mac_index", 0u);
  return config;
}

}  // namespace

Controller::Controller(ControllerConfig config)
    : config_(std::move(config)),
      state_file_(config_.state_file),
      saved_(state_file_.read()),
      engine_(std::make_unique<Engine>(continued(config_.engine, saved_))),
      netns_(std::make_unique<NetnsRegistry>(*engine_)) {
  if (!config_.counter_file.empty()) {
    auto file = CounterFile::open(config_.counter_file);
    if (!file) throw std::runtime_error(file.status().message());
    counter_file_ = std::move(*file);
  }
  if (config_.busy_poll.count() > 0) {
    poller_ = std::make_unique<tap::Poller>(config_.busy_poll);
    if (Status s = poller_->start(); !s) throw std::runtime_error(s.message());
  }
}

Status Controller::open_datapath() {
  // The kernel path opens for new pairs unless told not to, and for the
  // state file's pairs on it whatever new ones take.
  if (config_.datapath != DatapathChoice::kTap || saved_kernel_pairs()) {
    if (Status s = open_kernel_path(); !s) {
      if (config_.datapath == DatapathChoice::kKernel) return s;
      spdlog::warn("{}; new pairs take the tap data path", s.message());
      datapath_.reset();
    }
  }
  new_pairs_in_kernel_ = datapath_ != nullptr && config_.datapath != DatapathChoice::kTap;
  if (config_.datapath != DatapathChoice::kTap) {
    spdlog::info("new pairs take the {} data path", new_pairs_in_kernel_ ? "kernel" : "tap");
  }
  return {};
}

Controller::~Controller() {
  // Ends stop before the engine goes; their TAP devices stay for the next
  // daemon to adopt.
  for (auto& [name, end] : ends_) stop_end(end);
  ends_.clear();
  poller_.reset();
  hidden_poller_.reset();
  netns_.reset();
  engine_.reset();
}

Result<StartedCapture> Controller::start_capture(const control::CaptureRequest& request) {
  CaptureConfig config;
  config.snaplen = request.snaplen;
  config.buffer_bytes = request.buffer_kib * 1024;
  config.in = request.in;
  config.out = request.out;
  auto compiled = pcap::compile_filter(request.filter, config.snaplen);
  if (!compiled) return compiled.status();
  config.filter = *compiled;

  StartedCapture started;
  for (const std::string& name : request.interfaces) {
    End* end = find(name);
    if (end == nullptr) return no_such_interface(name);
    started.ifps.push_back(end->ifp);
  }
  started.capture = std::make_unique<Capture>(config, engine_->pool().config().buffer_size);
  for (const auto& ifp : started.ifps) started.capture->attach(*ifp);
  started.count = request.count;
  return started;
}

std::string Controller::metrics(const CaptureMetrics& captures) const {
  return render_metrics(*engine_, ends_, captures, datapath_.get());
}

End* Controller::find(std::string_view name) {
  auto it = ends_.find(name);
  return it == ends_.end() ? nullptr : &it->second;
}

// Following the kernel finds the device by this index, whatever it is
// called next.
void Controller::learn_ifindex(End& end) {
  const Netns* ns = netns_->find(end.ifp->vnet_name());
  auto link = ns != nullptr ? ns->control->link(end.ifp->name()) : Result<os::LinkInfo>(Status{ENOENT, ""});
  end.ifindex = link ? link->index : 0;
}

End* Controller::find(EndId id) {
  for (auto& [name, end] : ends_) {
    if (end.ifp->unit() == id.unit && end.ifp->side() == id.side) return &end;
  }
  return nullptr;
}

End* Controller::peer_of(const End& end) {
  auto peer = end.ifp->peer();
  return peer ? find(peer->name()) : nullptr;
}

void Controller::release_unused_netns() {
  std::set<std::string> used;
  for (const auto& [name, end] : ends_) used.insert(end.ifp->vnet_name());
  netns_->release_unused(used);
}

Status Controller::start_end(End& end, tap::Device device) {
  const std::string name = end.ifp->name();
  auto tap = std::make_shared<tap::Endpoint>(end.ifp, std::move(device), engine_->pool());
  end.transport = tap;
  const EndId id{end.ifp->unit(), end.ifp->side()};
  if (Status s = tap->start([this, id](const std::string& reason) { report_device_gone(id, reason); },
                            end.kernel && hidden_poller_ ? hidden_poller_.get() : poller_.get());
      !s) {
    return s;
  }
  end.ifp->attach(tap);
  if (end.kernel) {
    follow_carrier_in_kernel(end);
  } else {
    follow_carrier(end);
  }
  return {};
}

void Controller::stop_end(End& end) {
  end.carrier.reset();
  if (tap::Endpoint* tap = end.tap()) tap->stop();
  if (vxlan::Endpoint* tunnel = end.vxlan()) tunnel->stop();
  if (memif::Endpoint* peer = end.memif()) peer->stop();
}

PairCounters Controller::file_counters(int unit) const {
  if (!counter_file_) return {};
  auto counters = counter_file_->pair(unit);
  if (!counters) {
    spdlog::warn("{}; the engine counts epair{} in memory, from zero after a restart", counters.status().message(),
                 unit);
    return {};
  }
  return *counters;
}

// A pair, in this order:
// 1. Both ends get the engine's counters where they outlive epaird: on the
//    kernel path the program gives both ends a slot, its counters and the
//    engine's; on the TAP path the counter file has the unit's blocks.
// 2. The engine makes its interfaces: the name, unit and addresses, and
//    counters in those blocks, zeroed now on the TAP path (the unit was
//    another pair's before).
// 3. Each end gets its Linux devices: a TAP with its name, or on the kernel
//    path a veth with its name and the hidden devices behind it. When the
//    second end's cannot be made, the first's go and the engine forgets
//    the pair.
// 4. On the kernel path, the program learns both ends.
// 5. Each end takes its Ethernet address and starts: its TAP read, its
//    carrier following its peer.
Result<std::string> Controller::create_pair(std::string_view name) {
  std::optional<kernel::PairSlots> slots;
  PairCounters counters;
  if (new_pairs_in_kernel_) {
    auto taken = datapath_->take_slots();
    if (!taken) return taken.status();
    slots = *taken;
    counters = {datapath_->engine_counters(slots->a), datapath_->engine_counters(slots->b)};
  } else if (auto unit = cloner_unit(name); unit && *unit >= 0 && *unit <= kMaxUnit) {
    counters = file_counters(*unit);
  }
  const auto release_slots = [&]() {
    if (slots) datapath_->release_slots(*slots);
  };
  auto created = engine_->create(name, counters);
  if (!created) {
    release_slots();
    return created;
  }
  if (!new_pairs_in_kernel_) {
    for (const auto& block : {counters.a, counters.b}) {
      if (block) *block = CounterBlock{};
    }
  }
  const std::string names[2] = {*created, engine_->find(*created)->peer()->name()};
  End made[2];
  std::optional<tap::Device> devices[2];
  for (int i = 0; i < 2; ++i) {
    made[i].ifp = engine_->find(names[i]);
    auto device = new_pairs_in_kernel_ ? make_kernel_end(made[i], datapath_->indexes_of(i == 0 ? slots->a : slots->b))
                                       : tap::Device::create(names[i]);
    if (!device) {
      if (devices[0]) (void)devices[0]->set_persistent(false);
      remove_kernel_end(made[0]);
      (void)engine_->destroy(names[0]);
      release_slots();
      return device.status();
    }
    devices[i] = std::move(*device);
  }
  if (new_pairs_in_kernel_) {
    if (Status s = datapath_->add_pair(made[0].kernel->hidden, made[1].kernel->hidden, made[0].ifp->mtu(), *slots);
        !s) {
      for (int j = 0; j < 2; ++j) {
        remove_kernel_end(made[j]);
        (void)devices[j]->set_persistent(false);
      }
      (void)engine_->destroy(names[0]);
      release_slots();
      return s;
    }
  }
  for (int i = 0; i < 2; ++i) {
    End& end = ends_[names[i]];
    end = std::move(made[i]);
    if (Status s = netns_->host().control->set_mac(names[i], end.ifp->mac()); !s) spdlog::warn("{}", s.message());
    if (Status s = start_end(end, std::move(*devices[i])); !s) spdlog::error("{}", s.message());
    learn_ifindex(end);
  }
  spdlog::info("created {} ({} and {})", pair_name(*ends_[names[0]].ifp), names[0], names[1]);
  return names[0];
}

Result<std::string> Controller::create(std::string_view name) {
  Result<std::string> created = Status{ENOSPC, "no free epair unit"};
  if (name == "epair") {
    // The lowest unit free in the engine whose names no other device holds.
    for (int unit = 0; unit <= kMaxUnit; ++unit) {
      const std::string base = "epair" + std::to_string(unit);
      if (engine_->find(base + "a") || engine_->find(base + "b") || find(base + "a") || find(base + "b")) continue;
      created = create_pair(base);
      if (created || created.status().value() != EEXIST) break;
    }
  } else {
    created = create_pair(name);  // the engine judges the name
  }
  if (created) save();
  return created;
}

Status Controller::configure(std::string_view name, const std::vector<control::Action>& actions,
                             std::string* final_name) {
  if (find(name) == nullptr) return no_such_interface(name);
  // As ifconfig, the actions after a rename act on the new name.
  std::string current(name);
  if (final_name != nullptr) *final_name = current;
  for (const control::Action& action : actions) {
    End* end = find(current);
    if (end == nullptr) return no_such_interface(current);
    if (action.verb == "destroy") return destroy(current);
    Status s = action.verb == "name" ? rename_end(*end, action.value) : apply(*end, action);
    save();
    if (!s) return s;
    if (action.verb == "name") current = action.value;
    if (final_name != nullptr) *final_name = current;
  }
  return {};
}

// ifconfig NAME name NEW_NAME, in this order:
// 1. The name is checked as any interface's; no other end may have it.
// 2. Linux renames the end's device in its namespace, taking it down for
//    the moment when it is UP, since Linux renames only a device that is
//    down; EEXIST there is a device of that name.
// 3. The engine renames the interface, and the end is filed under its new
//    name. Its pair, unit, counters, attachment, impairment and captures
//    stay; on the kernel path its hidden devices keep their names.
Status Controller::rename_end(End& end, const std::string& new_name) {
  const std::string old = end.ifp->name();
  if (new_name == old) return {};
  if (Status s = control::check_interface_name(new_name); !s) return Status{s.value(), old + ": " + s.message()};
  if (find(new_name) != nullptr) return Status{EEXIST, "interface " + new_name + " already exists"};
  const std::string vnet = end.ifp->vnet_name();
  auto ns = netns_->open(vnet);
  if (!ns) return ns.status();
  os::RouteSocket& control = *(*ns)->control;
  auto link = control.link(old);
  if (!link) return link.status();
  const bool up = (link->flags & IFF_UP) != 0;
  if (up) {
    if (Status s = control.set_up(old, false); !s) return s;
  }
  Status renamed = control.set_name(old, new_name);
  if (renamed) {
    renamed = engine_->rename(old, new_name, vnet);
    if (!renamed) (void)control.set_name(new_name, old);
  }
  if (up) (void)control.set_up(renamed ? new_name : old, true);
  if (!renamed) {
    return renamed.value() == EEXIST ? Status{EEXIST, "interface " + new_name + " already exists"} : renamed;
  }
  follow_rename(old, new_name);
  return {};
}

void Controller::follow_rename(const std::string& old, const std::string& new_name) {
  auto node = ends_.extract(old);
  node.key() = new_name;
  ends_.insert(std::move(node));
  spdlog::info("{}: renamed {}", old, new_name);
}

Status Controller::apply(End& end, const control::Action& action) {
  if (action.verb == "up" || action.verb == "down") return set_flag_up(end, action.verb == "up");
  if (action.verb == "mtu") return set_mtu(end, action.value);
  if (action.verb == "ether") return set_ether(end, action.value);
  if (action.verb == "description") return set_description(end, action.value);
  if (auto word = control::capability_word(action.verb)) return set_capability(end, *word);
  if (action.verb == "group") return end.ifp->add_group(action.value);
  if (action.verb == "-group") return end.ifp->remove_group(action.value);
  if (action.verb == "impair") return impair(end, action.value);
  if (action.verb == "attach") return attach(end, action.value);
  if (action.verb == "detach") return detach(end);
  if (action.verb == "inet") return add_address(end, AF_INET, action.value);
  if (action.verb == "inet6") return add_address(end, AF_INET6, action.value);
  if (action.verb == "-inet") return remove_address(end, AF_INET, action.value);
  if (action.verb == "-inet6") return remove_address(end, AF_INET6, action.value);
  if (action.verb == "vnet") return move_end(end, action.value);
  if (action.verb == "-vnet") return reclaim_end(end, action.value);
  return Status{EINVAL, "unknown action '" + action.verb + "'"};
}

Status Controller::set_flag_up(End& end, bool up) {
  if (Status s = end.ifp->set_up(up); !s) return s;
  auto ns = netns_->open(end.ifp->vnet_name());
  if (!ns) return ns.status();
  return (*ns)->control->set_up(end.ifp->name(), up);
}

Status Controller::set_mtu(End& end, const std::string& value) {
  const std::string& name = end.ifp->name();
  // A TAP device takes no MTU above 65535 less its Ethernet header.
  const std::uint32_t most = end.kernel ? Interface::kMaxMtu : Interface::kMaxMtu - 14;
  const auto out_of_range = [&]() {
    return Status{EINVAL, name + ": SIOCSIFMTU: Invalid argument (mtu " + value +
                              " is out of range: " + std::to_string(Interface::kMinMtu) + ".." + std::to_string(most) +
                              " on the " + (end.kernel ? "kernel" : "tap") + " data path)"};
  };
  std::int64_t wanted = 0;
  auto [ptr, error] = std::from_chars(value.data(), value.data() + value.size(), wanted);
  if (ptr != value.data() + value.size() || (error != std::errc{} && error != std::errc::result_out_of_range)) {
    return Status{EINVAL, name + ": SIOCSIFMTU: Invalid argument (mtu '" + value + "' is not a number)"};
  }
  if (error != std::errc{} || wanted < Interface::kMinMtu || wanted > most) return out_of_range();
  const auto mtu = static_cast<std::uint32_t>(wanted);
  const std::uint32_t old = end.ifp->mtu();
  if (Status s = end.ifp->set_mtu(mtu); !s) return s;
  auto ns = netns_->open(end.ifp->vnet_name());
  if (!ns) return ns.status();
  if (Status s = (*ns)->control->set_mtu(name, mtu); !s) {
    (void)end.ifp->set_mtu(old);
    return s;
  }
  return {};
}

Status Controller::set_ether(End& end, const std::string& value) {
  const std::string& name = end.ifp->name();
  auto mac = MacAddress::parse(value);
  if (!mac) return Status{EINVAL, name + ": SIOCSIFLLADDR: Invalid argument"};
  const MacAddress old = end.ifp->mac();
  if (Status s = end.ifp->set_mac(*mac); !s) return s;
  auto ns = netns_->open(end.ifp->vnet_name());
  if (!ns) return ns.status();
  if (Status s = (*ns)->control->set_mac(name, *mac); !s) {
    (void)end.ifp->set_mac(old);
    return s;
  }
  return {};
}

// FreeBSD 15's words: txcsum and txcsum6 switch the pair's transmit
// checksum offload, on both ends; vlanhwtag the end's VLAN tag offload;
// rxcsum and rxcsum6 stay on, as there.
Status Controller::set_capability(End& end, control::CapabilityWord word) {
  const std::uint32_t caps = end.ifp->enabled_capabilities();
  if (Status s = end.ifp->set_enabled_capabilities(word.on ? caps | word.bit : caps & ~word.bit); !s) return s;
  update_offloads(end);
  if (End* peer = peer_of(end)) update_offloads(*peer);
  return {};
}

Status Controller::set_description(End& end, const std::string& value) {
  if (Status s = end.ifp->set_description(value); !s) return s;
  auto ns = netns_->open(end.ifp->vnet_name());
  if (!ns) return ns.status();
  return (*ns)->control->set_alias(end.ifp->name(), value);
}

Status Controller::impair(End& end, const std::string& words) {
  if (is_impairment_clear(words)) {
    end.ifp->clear_impairment();
    update_offloads(end);
    return {};
  }
  auto config = parse_impairment(words);
  if (!config) return Status{config.status().value(), end.ifp->name() + ": " + config.status().message()};
  if (Status s = end.ifp->set_impairment(*config); !s) return s;
  update_offloads(end);
  spdlog::info("{}: impair {}", end.ifp->name(), format_impairment(*config));
  return {};
}

Status Controller::add_address(End& end, int family, const std::string& cidr) {
  auto ns = netns_->open(end.ifp->vnet_name());
  if (!ns) return ns.status();
  if (Status s = (*ns)->control->add_address(end.ifp->name(), family, cidr); !s) return s;
  refresh_addresses(end);
  return {};
}

Status Controller::remove_address(End& end, int family, const std::string& address) {
  auto ns = netns_->open(end.ifp->vnet_name());
  if (!ns) return ns.status();
  if (Status s = (*ns)->control->remove_address(end.ifp->name(), family, address); !s) return s;
  refresh_addresses(end);
  return {};
}

namespace {

Status refuse_move_while_attached(const End& end) {
  return Status{
      EBUSY, end.ifp->name() + ": attached to " + std::string(end.attachment_kind()) + "; detach it before moving it"};
}

}  // namespace

Status Controller::move_end(End& end, std::string_view target) {
  if (end.attachment() != nullptr) return refuse_move_while_attached(end);
  const std::string name = end.ifp->name();
  const std::string from_vnet = end.ifp->vnet_name();
  auto to = netns_->open_target(target);
  if (!to) {
    release_unused_netns();
    return to.status();
  }
  const std::string to_vnet = (*to)->spec.name;
  if (Status s = engine_->move(name, to_vnet, from_vnet); !s) {
    release_unused_netns();
    return s;
  }
  auto from = netns_->open(from_vnet);
  Status moved = from ? (*from)->control->move(name, (*to)->fd.get()) : from.status();
  if (!moved) {
    (void)engine_->move(name, from_vnet, to_vnet);
    release_unused_netns();
    return moved;
  }
  end.addresses.clear();
  learn_ifindex(end);  // indexes are per namespace
  spdlog::info("{}: moved from {} to {}", name, from_vnet, to_vnet);
  release_unused_netns();
  return {};
}

Status Controller::reclaim_end(End& end, std::string_view from) {
  if (end.attachment() != nullptr) return refuse_move_while_attached(end);
  const std::string name = end.ifp->name();
  auto spec = os::parse_netns(from);
  if (!spec) return spec.status();
  const std::string from_vnet = netns_->vnet_of(*spec);
  if (Status s = engine_->reclaim(name, from_vnet, kHostVnet); !s) return s;
  auto ns = netns_->open(from_vnet);
  if (!ns) return ns.status();
  if (Status s = (*ns)->control->move(name, netns_->host().fd.get()); !s) {
    (void)engine_->move(name, from_vnet, kHostVnet);
    return s;
  }
  end.addresses.clear();
  learn_ifindex(end);
  spdlog::info("{}: returned from {} to {}", name, from_vnet, kHostVnet);
  release_unused_netns();
  return {};
}

Status Controller::destroy(std::string_view name) {
  if (find(name) == nullptr) return no_such_interface(name);
  teardown(std::string(name), "destroyed");
  return {};
}

// Teardown of a pair, in this order:
// 1. Both ends stop: no reader, poller or attachment thread touches the
//    engine's interfaces after this.
// 2. The engine destroys the pair (it drains what its queues hold).
// 3. Each TAP is made not persistent, so the kernel deletes it when its
//    descriptor closes with the End; on the kernel path the program forgets
//    the ends, and their devices, hidden and visible, go in one batch.
// 4. Namespaces no end lives in any more are closed, and the state saved.
void Controller::teardown(const std::string& ifname, const std::string& reason) {
  End* end = find(ifname);
  if (end == nullptr) return;
  const std::string pair = pair_name(*end->ifp);
  const std::string vnet = end->ifp->vnet_name();
  const int unit = end->ifp->unit();
  const bool in_kernel = end->kernel.has_value();
  const End* peer = peer_of(*end);
  const std::string names[2] = {ifname, peer != nullptr ? peer->ifp->name() : std::string()};
  std::string hidden_names[2];
  for (int i = 0; i < 2; ++i) {
    End* e = find(names[i]);
    if (e == nullptr) continue;
    if (e->kernel) hidden_names[i] = e->kernel->hidden_name;
    stop_end(*e);
  }
  if (Status s = engine_->destroy(ifname, vnet); !s) spdlog::warn("{}", s.message());
  for (const std::string& n : names) {
    if (End* e = find(n)) {
      if (e->kernel) {
        datapath_->remove_end(e->kernel->hidden);
      } else if (Status s = e->device().set_persistent(false); !s) {
        spdlog::warn("{}", s.message());
      }
    }
  }
  if (in_kernel) remove_kernel_devices(unit, hidden_names);
  for (const std::string& n : names) ends_.erase(n);
  spdlog::info("{} destroyed: {}", pair, reason);
  release_unused_netns();
  save();
}

std::vector<std::string> Controller::list(std::string_view group) const {
  std::vector<std::pair<std::pair<int, char>, std::string>> members;
  for (const auto& [name, end] : ends_) {
    const std::vector<std::string> groups = end.ifp->groups();
    if (group.empty() || std::ranges::find(groups, group) != groups.end()) {
      members.push_back({{end.ifp->unit(), end.ifp->side()}, name});
    }
  }
  std::ranges::sort(members);
  std::vector<std::string> names;
  names.reserve(members.size());
  for (auto& [key, name] : members) names.push_back(std::move(name));
  return names;
}

Result<json> Controller::show(std::string_view name) {
  End* end = find(name);
  if (end == nullptr) return no_such_interface(name);
  const std::optional<os::LinkInfo> link = refresh_addresses(*end);
  return describe_end(*end, link);
}

}  // namespace epair::daemon
