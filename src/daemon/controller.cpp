#include "controller.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <charconv>
#include <cstdio>
#include <fstream>
#include <set>

#include "bpf.hpp"
#include "epair/impairment.hpp"

namespace epair::daemon {

namespace {

constexpr int kStateVersion = 1;

std::string pair_name(const Interface& ifp) { return "epair" + std::to_string(ifp.unit()); }

std::string other_end(std::string_view ifname) {
  std::string other(ifname);
  other.back() = other.back() == 'a' ? 'b' : 'a';
  return other;
}

std::string netmask_hex(int prefix) {
  const std::uint32_t mask = prefix == 0 ? 0 : ~0u << (32 - prefix);
  char text[16];
  std::snprintf(text, sizeof text, "0x%08x", mask);
  return text;
}

json address_json(const os::AddressInfo& a) {
  json j = {{"address", a.local}, {"prefixlen", a.prefix_length}};
  if (a.family == AF_INET) {
    j["netmask"] = netmask_hex(a.prefix_length);
    if (!a.broadcast.empty()) j["broadcast"] = a.broadcast;
  } else {
    j["scope"] = a.scope == RT_SCOPE_LINK ? "link" : a.scope == RT_SCOPE_HOST ? "host" : "global";
  }
  return j;
}

// "A/L", as state.json keeps addresses.
std::vector<std::string> cidrs(const std::vector<os::AddressInfo>& addresses) {
  std::vector<std::string> result;
  result.reserve(addresses.size());
  for (const auto& a : addresses) result.push_back(a.local + "/" + std::to_string(a.prefix_length));
  return result;
}

json impairment_json(const ImpairmentConfig& c, const ImpairmentCounters& n) {
  const char* distributions[] = {"uniform", "normal", "pareto"};
  json j = {{"text", format_impairment(c)},
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
    j["gemodel"] = {{"p_percent", c.ge_p_percent},
                    {"r_percent", c.ge_r_percent},
                    {"one_minus_h_percent", c.ge_1h_percent},
                    {"one_minus_k_percent", c.ge_1k_percent}};
  }
  return j;
}

std::string impairment_counters_line(const ImpairmentCounters& n) {
  return "\timpaired: " + std::to_string(n.lost) + " lost, " + std::to_string(n.duplicated) + " duplicated, " +
         std::to_string(n.corrupted) + " corrupted, " + std::to_string(n.reordered) + " reordered, " +
         std::to_string(n.dropped) + " dropped at the limit, " + std::to_string(n.delayed) + " delayed, " +
         std::to_string(n.held) + " held";
}

json counters_json(const InterfaceCounters& c) {
  return {{"ipackets", c.ipackets}, {"ierrors", c.ierrors}, {"opackets", c.opackets}, {"oerrors", c.oerrors},
          {"ibytes", c.ibytes},     {"obytes", c.obytes},   {"imcasts", c.imcasts},   {"omcasts", c.omcasts},
          {"iqdrops", c.iqdrops},   {"oqdrops", c.oqdrops}};
}

}  // namespace

namespace {

json read_state(const std::filesystem::path& file) {
  if (file.empty() || !std::filesystem::exists(file)) return json::object();
  json state;
  try {
    std::ifstream in(file);
    state = json::parse(in);
  } catch (const std::exception& e) {
    throw std::runtime_error(file.string() + ": " + e.what());
  }
  if (!state.is_object() || state.value("version", 0) != kStateVersion) {
    throw std::runtime_error(file.string() + ": not an epaird state file of version " + std::to_string(kStateVersion));
  }
  return state;
}

EngineConfig continued(EngineConfig config, const json& state) {
  config.mac_index_start = state.value("mac_index", 0u);
  return config;
}

}  // namespace

Controller::Controller(ControllerConfig config)
    : config_(std::move(config)),
      saved_(read_state(config_.state_file)),
      engine_(std::make_unique<Engine>(continued(config_.engine, saved_))) {
  auto host = netns(std::string(kHostVnet));
  if (!host) throw std::runtime_error(host.status().message());
  if (config_.busy_poll.count() > 0) {
    poller_ = std::make_unique<os::TapPoller>(config_.busy_poll);
    if (Status s = poller_->start(); !s) throw std::runtime_error(s.message());
  }
}

Controller::~Controller() {
  // Ends stop before the engine goes; their TAP devices stay for the next
  // daemon to adopt.
  for (auto& [name, end] : ends_) stop_end(end);
  ends_.clear();
  poller_.reset();
  engine_.reset();
}

Result<StartedCapture> Controller::start_capture(const CaptureRequest& request) {
  CaptureConfig config;
  config.snaplen = request.snaplen;
  config.buffer_bytes = request.buffer_kib * 1024;
  config.in = request.in;
  config.out = request.out;
  auto compiled = capture::compile_filter(request.filter, config.snaplen);
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

namespace {

std::string label_value(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

// One metric family: HELP and TYPE, then its samples.
class Family {
 public:
  Family(std::string& out, std::string_view name, std::string_view type, std::string_view help)
      : out_(out), name_(name) {
    out_ += "# HELP " + name_ + " " + std::string(help) + "\n# TYPE " + name_ + " " + std::string(type) + "\n";
  }
  void sample(std::uint64_t value, std::string_view labels = {}) {
    out_ += name_;
    if (!labels.empty()) out_ += "{" + std::string(labels) + "}";
    out_ += " " + std::to_string(value) + "\n";
  }

 private:
  std::string& out_;
  std::string name_;
};

}  // namespace

std::string Controller::metrics(const CaptureMetrics& captures) const {
  std::string out;
  std::size_t pairs = 0;
  for (const auto& [name, end] : ends_) pairs += end.ifp->side() == 'a';
  Family(out, "epair_pairs", "gauge", "Pairs epaird owns.").sample(pairs);
  Family(out, "epair_workers", "gauge", "Engine worker threads.").sample(engine_->worker_count());
  const FramePool& pool = engine_->pool();
  Family(out, "epair_pool_frames", "gauge", "Frame buffers in the pool.").sample(pool.config().frames);
  Family(out, "epair_pool_free_frames", "gauge", "Frame buffers free now.").sample(pool.available());
  Family(out, "epair_pool_alloc_failures_total", "counter", "Frames not read because the pool was empty.")
      .sample(pool.alloc_failures());

  struct Row {
    std::string labels;
    const Interface* ifp;
    InterfaceCounters counters;
  };
  std::vector<Row> rows;
  for (const auto& [name, end] : ends_) {
    rows.push_back({"interface=\"" + label_value(name) + "\",vnet=\"" + label_value(end.ifp->vnet_name()) + "\"",
                    end.ifp.get(), end.ifp->counters()});
  }
  auto per_end = [&](std::string_view metric, std::string_view type, std::string_view help, auto value) {
    Family family(out, metric, type, help);
    for (const Row& row : rows) family.sample(value(row), row.labels);
  };
  per_end("epair_up", "gauge", "1 when the end is UP.", [](const Row& r) { return r.ifp->is_up() ? 1u : 0u; });
  per_end("epair_carrier", "gauge", "1 when the end has carrier (its peer is UP).",
          [](const Row& r) { return r.ifp->link_state() == LinkState::kUp ? 1u : 0u; });
  per_end("epair_mtu_bytes", "gauge", "MTU of the end.", [](const Row& r) { return r.ifp->mtu(); });
  per_end("epair_receive_packets_total", "counter", "Frames queued to the end (ipackets).",
          [](const Row& r) { return r.counters.ipackets; });
  per_end("epair_receive_bytes_total", "counter", "Bytes the end received (ibytes).",
          [](const Row& r) { return r.counters.ibytes; });
  per_end("epair_receive_multicast_packets_total", "counter", "Broadcast and multicast frames received (imcasts).",
          [](const Row& r) { return r.counters.imcasts; });
  per_end("epair_transmit_packets_total", "counter", "Frames the end transmitted (opackets).",
          [](const Row& r) { return r.counters.opackets; });
  per_end("epair_transmit_bytes_total", "counter", "Bytes the end transmitted (obytes).",
          [](const Row& r) { return r.counters.obytes; });
  per_end("epair_transmit_multicast_packets_total", "counter", "Broadcast and multicast frames sent (omcasts).",
          [](const Row& r) { return r.counters.omcasts; });
  {
    Family family(out, "epair_dropped_packets_total", "counter",
                  "Frames lost, by cause: transmit_error (oerrors: end down, too big, peer not ready), "
                  "queue_full (oqdrops: the peer's receive queue was full, or the frame pool empty), no_receiver "
                  "(iqdrops: nothing "
                  "behind the end took them), receive_error (ierrors: refused on input, too big for the MTU).");
    for (const Row& row : rows) {
      family.sample(row.counters.oerrors, row.labels + ",cause=\"transmit_error\"");
      family.sample(row.counters.oqdrops, row.labels + ",cause=\"queue_full\"");
      family.sample(row.counters.iqdrops, row.labels + ",cause=\"no_receiver\"");
      family.sample(row.counters.ierrors, row.labels + ",cause=\"receive_error\"");
    }
  }
  per_end("epair_queue_frames", "gauge", "Frames waiting in the end's receive queues.",
          [](const Row& r) { return r.ifp->queued_frames(); });
  per_end("epair_queue_capacity_frames", "gauge", "Room of the end's receive queues.",
          [](const Row& r) { return r.ifp->queue_capacity(); });
  per_end("epair_captures", "gauge", "Captures running on the end.", [&](const Row& r) {
    auto it = captures.running.find(r.ifp->name());
    return it == captures.running.end() ? 0u : it->second;
  });
  per_end("epair_capture_dropped_packets_total", "counter",
          "Frames lost to captures on the end whose buffer was full (the wire lost none).", [&](const Row& r) {
            auto it = captures.dropped.find(r.ifp->name());
            return it == captures.dropped.end() ? 0u : it->second;
          });
  std::vector<std::pair<const Row*, ImpairmentCounters>> impaired;
  for (const Row& row : rows) {
    if (row.ifp->impairment()) impaired.emplace_back(&row, row.ifp->impairment_counters());
  }
  {
    Family family(out, "epair_impaired_packets_total", "counter",
                  "What an end's impairment did to the frames it transmitted, by action: lost, duplicated, "
                  "corrupted, reordered, dropped (at the limit; in queue_full too), delayed. Impaired ends only.");
    for (const auto& [row, c] : impaired) {
      const std::pair<const char*, std::uint64_t> actions[] = {{"lost", c.lost},           {"duplicated", c.duplicated},
                                                               {"corrupted", c.corrupted}, {"reordered", c.reordered},
                                                               {"dropped", c.dropped},     {"delayed", c.delayed}};
      for (const auto& [action, value] : actions) family.sample(value, row->labels + ",action=\"" + action + "\"");
    }
  }
  Family held(out, "epair_impaired_held_packets", "gauge", "Frames an end's impairment holds now.");
  for (const auto& [row, c] : impaired) held.sample(c.held, row->labels);
  std::vector<std::pair<const Row*, const memif::Endpoint*>> programs;
  for (const Row& row : rows) {
    auto it = ends_.find(row.ifp->name());
    if (it != ends_.end() && it->second.memif) programs.emplace_back(&row, it->second.memif.get());
  }
  {
    Family family(out, "epair_memif_packets_total", "counter",
                  "Frames a memif end put on its transmit rings and took off its receive rings, by direction. "
                  "memif ends only.");
    for (const auto& [row, m] : programs) {
      const memif::Counters c = m->counters();
      family.sample(c.sent, row->labels + ",direction=\"sent\"");
      family.sample(c.received, row->labels + ",direction=\"received\"");
    }
  }
  {
    Family family(out, "epair_memif_dropped_packets_total", "counter",
                  "What a memif end dropped, by cause: ring_full, not_connected, bad_descriptor, no_buffer.");
    for (const auto& [row, m] : programs) {
      const memif::Counters c = m->counters();
      const std::pair<const char*, std::uint64_t> causes[] = {{"ring_full", c.ring_full},
                                                              {"not_connected", c.not_connected},
                                                              {"bad_descriptor", c.bad_descriptor},
                                                              {"no_buffer", c.no_buffer}};
      for (const auto& [cause, value] : causes) family.sample(value, row->labels + ",cause=\"" + cause + "\"");
    }
  }
  {
    Family family(out, "epair_memif_held_back_total", "counter",
                  "Reads of a memif end with flow-control on that left frames on the peer's ring because the "
                  "other end had no room.");
    for (const auto& [row, m] : programs) family.sample(m->counters().held_back, row->labels);
  }
  {
    Family family(out, "epair_memif_relayed_packets_total", "counter",
                  "Frames a memif end with zero-copy on took off its receive rings and handed to the other end's "
                  "ring as descriptors, uncopied (a share of the received ones).");
    for (const auto& [row, m] : programs) family.sample(m->counters().relayed, row->labels);
  }
  {
    Family family(out, "epair_memif_connected", "gauge", "1 while a memif end's peer is connected.");
    for (const auto& [row, m] : programs) family.sample(m->connected() ? 1 : 0, row->labels);
  }
  {
    Family family(out, "epair_memif_disconnects_total", "counter",
                  "Control channels of a memif end that ended, for any reason (see epairctl NAME).");
    for (const auto& [row, m] : programs) family.sample(m->counters().disconnects, row->labels);
  }
  std::vector<std::pair<const Row*, vxlan::Counters>> tunnels;
  for (const Row& row : rows) {
    auto it = ends_.find(row.ifp->name());
    if (it != ends_.end() && it->second.vxlan) tunnels.emplace_back(&row, it->second.vxlan->counters());
  }
  {
    Family family(out, "epair_vxlan_packets_total", "counter",
                  "Frames a VXLAN end sent to its remote and received from it, by direction. VXLAN ends only.");
    for (const auto& [row, c] : tunnels) {
      family.sample(c.sent, row->labels + ",direction=\"sent\"");
      family.sample(c.received, row->labels + ",direction=\"received\"");
    }
  }
  {
    Family family(out, "epair_vxlan_checksums_filled_total", "counter",
                  "Frames a VXLAN end received with an inner checksum its sender left to offload, filled in by "
                  "epaird. VXLAN ends only.");
    for (const auto& [row, c] : tunnels) family.sample(c.checksums_filled, row->labels);
  }
  Family dropped(out, "epair_vxlan_dropped_packets_total", "counter",
                 "What a VXLAN end dropped, by cause: too_big (for the underlay's MTU), send_error, short, "
                 "bad_flags (no I flag), other_vni, bad_frame, no_buffer (frame pool empty).");
  for (const auto& [row, c] : tunnels) {
    const std::pair<const char*, std::uint64_t> causes[] = {{"too_big", c.too_big},     {"send_error", c.send_errors},
                                                            {"short", c.short_},        {"bad_flags", c.bad_flags},
                                                            {"other_vni", c.other_vni}, {"bad_frame", c.bad_frame},
                                                            {"no_buffer", c.no_buffer}};
    for (const auto& [cause, value] : causes) dropped.sample(value, row->labels + ",cause=\"" + cause + "\"");
  }
  return out;
}

Controller::End* Controller::find(std::string_view name) {
  auto it = ends_.find(name);
  return it == ends_.end() ? nullptr : &it->second;
}

Result<Controller::Netns*> Controller::netns(const std::string& vnet) {
  if (auto it = netns_.find(vnet); it != netns_.end()) return &it->second;
  Netns ns;
  ns.spec = vnet == kHostVnet ? os::NetnsSpec{vnet, "/proc/self/ns/net", 0} : os::spec_of_vnet(vnet);
  auto fd = os::open_netns(ns.spec);
  if (!fd) return fd.status();
  ns.fd = std::move(*fd);
  auto id = os::netns_id(ns.fd.get());
  if (!id) return id.status();
  ns.id = *id;
  Status opened = os::run_in_netns(ns.fd.get(), [&ns]() -> Status {
    auto control = os::RouteSocket::open();
    if (!control) return control.status();
    auto monitor = os::RouteSocket::open_monitor();
    if (!monitor) return monitor.status();
    ns.control = std::make_unique<os::RouteSocket>(std::move(*control));
    ns.monitor = std::make_unique<os::RouteSocket>(std::move(*monitor));
    return {};
  });
  if (!opened) return opened;
  if (vnet != kHostVnet) {
    if (Status s = engine_->create_vnet(vnet); !s && s.value() != EEXIST) return s;
  }
  return &netns_.emplace(vnet, std::move(ns)).first->second;
}

std::string Controller::vnet_of(const os::NetnsSpec& spec) const {
  if (spec.pid == 0) return spec.name;
  // A process in a namespace that has a name (or is the host) is in that vnet.
  auto id = os::netns_id(spec);
  if (!id) return spec.name;
  for (const auto& [name, ns] : netns_) {
    if (ns.id == *id) return name;
  }
  return os::named_netns(*id).value_or(spec.name);
}

Result<Controller::Netns*> Controller::netns_for_move(std::string_view target) {
  auto spec = os::parse_netns(target);
  if (!spec) return spec.status();
  return netns(vnet_of(*spec));
}

void Controller::release_unused_netns() {
  std::set<std::string> used;
  for (const auto& [name, end] : ends_) used.insert(end.ifp->vnet_name());
  for (auto it = netns_.begin(); it != netns_.end();) {
    if (it->first == kHostVnet || used.contains(it->first)) {
      ++it;
      continue;
    }
    (void)engine_->destroy_vnet(it->first);
    it = netns_.erase(it);
  }
}

Status Controller::start_end(End& end, os::TapDevice device) {
  const std::string name = end.ifp->name();
  end.tap = std::make_shared<os::TapEndpoint>(end.ifp, std::move(device), engine_->pool());
  if (Status s =
          end.tap->start([this, name](const std::string& reason) { report_device_gone(name, reason); }, poller_.get());
      !s) {
    return s;
  }
  end.ifp->attach(end.tap);
  follow_carrier(end);
  return {};
}

void Controller::stop_end(End& end) {
  end.carrier.reset();
  if (end.tap) end.tap->stop();
  if (end.vxlan) end.vxlan->stop();
  if (end.memif) end.memif->stop();
}

void Controller::follow_carrier(End& end) {
  std::weak_ptr<os::TapEndpoint> weak = end.tap;
  auto update = [weak](const Interface& ifp) {
    if (auto tap = weak.lock()) {
      if (Status s = tap->device().set_carrier(ifp.link_state() == LinkState::kUp); !s) {
        spdlog::warn("{}", s.message());
      }
    }
  };
  end.carrier = end.ifp->subscribe([update](Interface& ifp, InterfaceEvent event) {
    if (event == InterfaceEvent::kLinkState) update(ifp);
  });
  update(*end.ifp);
}

Result<std::string> Controller::create_pair(std::string_view name) {
  auto created = engine_->create(name);
  if (!created) return created;
  const std::string names[2] = {*created, other_end(*created)};
  std::optional<os::TapDevice> devices[2];
  for (int i = 0; i < 2; ++i) {
    auto device = os::TapDevice::create(names[i]);
    if (!device) {
      if (devices[0]) (void)devices[0]->set_persistent(false);
      (void)engine_->destroy(names[0]);
      return device.status();
    }
    devices[i] = std::move(*device);
  }
  Netns& host = netns_.find(kHostVnet)->second;
  for (int i = 0; i < 2; ++i) {
    End& end = ends_[names[i]];
    end.ifp = engine_->find(names[i]);
    if (Status s = host.control->set_mac(names[i], end.ifp->mac()); !s) spdlog::warn("{}", s.message());
    if (Status s = start_end(end, std::move(*devices[i])); !s) spdlog::error("{}", s.message());
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

Status Controller::configure(std::string_view name, const std::vector<Action>& actions) {
  if (find(name) == nullptr) return no_such_interface(name);
  for (const Action& action : actions) {
    End* end = find(name);
    if (end == nullptr) return no_such_interface(name);
    if (action.verb == "destroy") return destroy(name);
    Status s = apply(*end, action);
    save();
    if (!s) return s;
  }
  return {};
}

Status Controller::apply(End& end, const Action& action) {
  const std::string& name = end.ifp->name();
  if (action.verb == "up" || action.verb == "down") return set_flag_up(end, action.verb == "up");
  if (action.verb == "mtu") {
    std::uint32_t mtu = 0;
    auto [ptr, error] = std::from_chars(action.value.data(), action.value.data() + action.value.size(), mtu);
    if (error != std::errc{} || ptr != action.value.data() + action.value.size()) {
      return Status{EINVAL, name + ": SIOCSIFMTU: Invalid argument"};
    }
    const std::uint32_t old = end.ifp->mtu();
    if (Status s = end.ifp->set_mtu(mtu); !s) return s;
    auto ns = netns(end.ifp->vnet_name());
    if (!ns) return ns.status();
    if (Status s = (*ns)->control->set_mtu(name, mtu); !s) {
      (void)end.ifp->set_mtu(old);
      return s;
    }
    return {};
  }
  if (action.verb == "ether") {
    auto mac = MacAddress::parse(action.value);
    if (!mac) return Status{EINVAL, name + ": SIOCSIFLLADDR: Invalid argument"};
    const MacAddress old = end.ifp->mac();
    if (Status s = end.ifp->set_mac(*mac); !s) return s;
    auto ns = netns(end.ifp->vnet_name());
    if (!ns) return ns.status();
    if (Status s = (*ns)->control->set_mac(name, *mac); !s) {
      (void)end.ifp->set_mac(old);
      return s;
    }
    return {};
  }
  if (action.verb == "description") {
    if (Status s = end.ifp->set_description(action.value); !s) return s;
    auto ns = netns(end.ifp->vnet_name());
    if (!ns) return ns.status();
    return (*ns)->control->set_alias(name, action.value);
  }
  if (action.verb == "impair") return impair(end, action.value);
  if (action.verb == "attach") return attach(end, action.value);
  if (action.verb == "detach") return detach(end);
  if (action.verb == "inet") return add_address(end, AF_INET, action.value);
  if (action.verb == "inet6") return add_address(end, AF_INET6, action.value);
  if (action.verb == "vnet") return move_end(end, action.value);
  if (action.verb == "-vnet") return reclaim_end(end, action.value);
  return Status{EINVAL, "unknown action '" + action.verb + "'"};
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

void Controller::update_offloads(End& end) {
  if (!end.tap) return;
  // Corruption must hit frames as a wire carries them, with their own
  // checksums; a VXLAN peer sends each frame as one datagram, a memif peer
  // as buffers without offload metadata. Either way the kernel segments
  // and checksums in software meanwhile.
  const auto impairment = end.ifp->impairment();
  End* peer = find(other_end(end.ifp->name()));
  const bool wire_sized =
      (impairment && impairment->corrupt_percent != 0) || (peer != nullptr && (peer->vxlan || peer->memif));
  if (Status s = end.tap->device().set_offloads(!wire_sized); !s) spdlog::warn("{}", s.message());
}

std::string Controller::attachment(const End& end) {
  if (end.vxlan) return "vxlan " + vxlan::format_config(end.vxlan->config());
  if (end.memif) return "memif " + memif::format_config(end.memif->config());
  return {};
}

Status Controller::attach(End& end, const std::string& words) {
  const std::string& name = end.ifp->name();
  if (Status s = check_attach(words); !s) return Status{EINVAL, name + ": " + s.message()};
  const std::string previous = attachment(end);
  if (previous.empty()) return open_attachment(end, words);
  // New settings: the old attachment gives up its port or socket first,
  // and comes back if the new one cannot be opened.
  if (Status s = detach(end); !s) return s;
  Status opened = open_attachment(end, words);
  if (!opened) {
    if (Status back = open_attachment(end, previous); !back) {
      spdlog::error("{}: the previous attachment could not be opened again: {}", name, back.message());
    }
  }
  return opened;
}

Status Controller::open_attachment(End& end, const std::string& words) {
  const std::string_view settings = std::string_view(words).substr(5);
  if (vxlan::is_vxlan_attach(words)) {
    auto config = vxlan::parse_config(settings);
    return config ? open_tunnel(end, *config) : config.status();
  }
  auto config = memif::parse_config(settings);
  return config ? open_memif(end, *config) : config.status();
}

// The TAP stays, parked without carrier, for detach to bring back.
void Controller::park_tap(End& end, std::shared_ptr<Endpoint> endpoint) {
  stop_end(end);
  end.ifp->attach(std::move(endpoint));
  end.parked = end.tap->take_device();
  end.tap.reset();
  (void)end.parked->set_carrier(false);
}

Status Controller::open_tunnel(End& end, const vxlan::Config& config) {
  const std::string& name = end.ifp->name();
  auto ns = netns(end.ifp->vnet_name());
  if (!ns) return ns.status();
  std::shared_ptr<vxlan::Endpoint> tunnel;
  Status opened = os::run_in_netns((*ns)->fd.get(), [&]() -> Status {
    auto made = vxlan::Endpoint::open(end.ifp, config, engine_->pool());
    if (!made) return made.status();
    tunnel = std::move(*made);
    return {};
  });
  if (!opened) return Status{opened.value(), name + ": " + opened.message()};
  if (Status s = tunnel->start(); !s) return Status{s.value(), name + ": " + s.message()};
  park_tap(end, tunnel);
  end.vxlan = std::move(tunnel);
  if (End* peer = find(other_end(name))) update_offloads(*peer);
  spdlog::info("{}: attached to vxlan {}", name, vxlan::format_config(config));
  return {};
}

Status Controller::open_memif(End& end, const memif::Config& config) {
  const std::string& name = end.ifp->name();
  auto made = memif::Endpoint::open(end.ifp, config, engine_->pool());
  if (!made) return Status{made.status().value(), name + ": " + made.status().message()};
  std::shared_ptr<memif::Endpoint> peer_program = std::move(*made);
  if (Status s = peer_program->start(); !s) return Status{s.value(), name + ": " + s.message()};
  park_tap(end, peer_program);
  end.memif = std::move(peer_program);
  if (End* peer = find(other_end(name))) update_offloads(*peer);
  spdlog::info("{}: attached to memif {}", name, memif::format_config(config, false));
  return {};
}

Status Controller::detach(End& end) {
  const std::string& name = end.ifp->name();
  if (!end.vxlan && !end.memif) return Status{EINVAL, name + ": detach: not attached"};
  const std::string kind = end.vxlan ? "vxlan" : "memif";
  stop_end(end);
  end.ifp->detach();
  end.vxlan.reset();
  end.memif.reset();
  end.ifp->set_endpoint_link(true);
  os::TapDevice device = std::move(*end.parked);
  end.parked.reset();
  if (Status s = start_end(end, std::move(device)); !s) return s;
  if (End* peer = find(other_end(name))) update_offloads(*peer);
  spdlog::info("{}: detached from {}", name, kind);
  return {};
}

Status Controller::set_flag_up(End& end, bool up) {
  if (Status s = end.ifp->set_up(up); !s) return s;
  auto ns = netns(end.ifp->vnet_name());
  if (!ns) return ns.status();
  return (*ns)->control->set_up(end.ifp->name(), up);
}

Status Controller::add_address(End& end, int family, const std::string& cidr) {
  auto ns = netns(end.ifp->vnet_name());
  if (!ns) return ns.status();
  if (Status s = (*ns)->control->add_address(end.ifp->name(), family, cidr); !s) return s;
  refresh_addresses(end);
  return {};
}

Status Controller::move_end(End& end, std::string_view target) {
  const std::string name = end.ifp->name();
  if (end.vxlan || end.memif) {
    return Status{EBUSY, name + ": attached to " + (end.vxlan ? "vxlan" : "memif") + "; detach it before moving it"};
  }
  const std::string from_vnet = end.ifp->vnet_name();
  auto to = netns_for_move(target);
  if (!to) {
    release_unused_netns();
    return to.status();
  }
  const std::string to_vnet = (*to)->spec.name;
  if (Status s = engine_->move(name, to_vnet, from_vnet); !s) {
    release_unused_netns();
    return s;
  }
  auto from = netns(from_vnet);
  Status moved = from ? (*from)->control->move(name, (*to)->fd.get()) : from.status();
  if (!moved) {
    (void)engine_->move(name, from_vnet, to_vnet);
    release_unused_netns();
    return moved;
  }
  end.addresses.clear();
  end.ifindex = 0;  // indexes are per namespace
  spdlog::info("{}: moved from {} to {}", name, from_vnet, to_vnet);
  release_unused_netns();
  return {};
}

Status Controller::reclaim_end(End& end, std::string_view from) {
  if (end.vxlan || end.memif) {
    return Status{
        EBUSY, end.ifp->name() + ": attached to " + (end.vxlan ? "vxlan" : "memif") + "; detach it before moving it"};
  }
  const std::string name = end.ifp->name();
  auto spec = os::parse_netns(from);
  if (!spec) return spec.status();
  const std::string from_vnet = vnet_of(*spec);
  if (Status s = engine_->reclaim(name, from_vnet, kHostVnet); !s) return s;
  Netns& host = netns_.find(kHostVnet)->second;
  Netns& ns = netns_.find(from_vnet)->second;
  if (Status s = ns.control->move(name, host.fd.get()); !s) {
    (void)engine_->move(name, from_vnet, kHostVnet);
    return s;
  }
  end.addresses.clear();
  end.ifindex = 0;
  spdlog::info("{}: returned from {} to {}", name, from_vnet, kHostVnet);
  release_unused_netns();
  return {};
}

Status Controller::destroy(std::string_view name) {
  if (find(name) == nullptr) return no_such_interface(name);
  teardown(std::string(name), "destroyed");
  return {};
}

void Controller::teardown(const std::string& ifname, const std::string& reason) {
  End* end = find(ifname);
  if (end == nullptr) return;
  const std::string pair = pair_name(*end->ifp);
  const std::string vnet = end->ifp->vnet_name();
  const std::string names[2] = {ifname, other_end(ifname)};
  for (const std::string& n : names) {
    if (End* e = find(n)) stop_end(*e);
  }
  if (Status s = engine_->destroy(ifname, vnet); !s) spdlog::warn("{}", s.message());
  for (const std::string& n : names) {
    if (End* e = find(n)) {
      // A TAP that is not persistent is deleted when its descriptor closes.
      os::TapDevice& device = e->tap ? e->tap->device() : *e->parked;
      if (Status s = device.set_persistent(false); !s) spdlog::warn("{}", s.message());
    }
    ends_.erase(n);
  }
  spdlog::info("{} destroyed: {}", pair, reason);
  release_unused_netns();
  save();
}

std::vector<std::string> Controller::list() const {
  std::vector<std::string> names;
  for (const auto& [name, end] : ends_) names.push_back(name);
  std::sort(names.begin(), names.end(), [](const std::string& x, const std::string& y) {
    const auto unit = [](const std::string& n) { return std::stoi(n.substr(5, n.size() - 6)); };
    return unit(x) != unit(y) ? unit(x) < unit(y) : x < y;
  });
  return names;
}

std::optional<os::LinkInfo> Controller::refresh_addresses(End& end) {
  auto ns = netns(end.ifp->vnet_name());
  if (!ns) return std::nullopt;
  auto link = (*ns)->control->link(end.ifp->name());
  if (!link) return std::nullopt;
  auto addresses = (*ns)->control->addresses(link->index);
  if (addresses) end.addresses = std::move(*addresses);
  return std::move(*link);
}

Result<json> Controller::show(std::string_view name) {
  End* end = find(name);
  if (end == nullptr) return no_such_interface(name);
  Interface& ifp = *end->ifp;
  const std::optional<os::LinkInfo> link = refresh_addresses(*end);
  json j;
  j["name"] = ifp.name();
  j["unit"] = ifp.unit();
  j["side"] = std::string(1, ifp.side());
  j["peer"] = other_end(ifp.name());
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
  j["counters"] = counters_json(ifp.counters());
  j["queue"] = {{"frames", ifp.queued_frames()}, {"capacity", ifp.queue_capacity()}};
  std::vector<std::string> lines;
  json inet = json::array();
  json inet6 = json::array();
  for (const os::AddressInfo& a : end->addresses) {
    if (a.family == AF_INET) {
      inet.push_back(address_json(a));
      std::string line = "\tinet " + a.local + " netmask " + netmask_hex(a.prefix_length);
      if (!a.broadcast.empty()) line += " broadcast " + a.broadcast;
      lines.push_back(line);
    } else if (a.family == AF_INET6) {
      inet6.push_back(address_json(a));
      std::string line = "\tinet6 " + a.local + (a.scope == RT_SCOPE_LINK ? "%" + ifp.name() : "") + " prefixlen " +
                         std::to_string(a.prefix_length);
      lines.push_back(line);
    }
  }
  j["inet"] = inet;
  j["inet6"] = inet6;
  if (link) j["linux"] = {{"ifindex", link->index}, {"flags", link->flags}, {"carrier", link->carrier}};
  if (auto impairment = ifp.impairment()) {
    const ImpairmentCounters counters = ifp.impairment_counters();
    j["impair"] = impairment_json(*impairment, counters);
    lines.push_back("\timpair: " + format_impairment(*impairment));
    lines.push_back(impairment_counters_line(counters));
  } else {
    j["impair"] = nullptr;
  }
  if (end->vxlan) {
    const vxlan::Config& c = end->vxlan->config();
    const vxlan::Counters n = end->vxlan->counters();
    j["vxlan"] = {{"text", vxlan::format_config(c)},
                  {"remote", c.remote.text},
                  {"local", c.local ? json(c.local->text) : json()},
                  {"vni", c.vni},
                  {"dstport", c.dstport},
                  {"srcport", {c.srcport_min, c.srcport_max}},
                  {"ttl", c.ttl},
                  {"dev", c.dev},
                  {"df", c.dont_fragment ? "set" : "unset"},
                  {"overhead", c.overhead()},
                  {"counters",
                   {{"sent", n.sent},
                    {"received", n.received},
                    {"too_big", n.too_big},
                    {"send_errors", n.send_errors},
                    {"short", n.short_},
                    {"bad_flags", n.bad_flags},
                    {"other_vni", n.other_vni},
                    {"bad_frame", n.bad_frame},
                    {"no_buffer", n.no_buffer},
                    {"checksums_filled", n.checksums_filled}}}};
    lines.push_back("\tvxlan: " + vxlan::format_config(c));
    lines.push_back("\tvxlan frames: " + std::to_string(n.sent) + " sent, " + std::to_string(n.received) +
                    " received; dropped: " + std::to_string(n.too_big) + " too big, " + std::to_string(n.send_errors) +
                    " send errors, " + std::to_string(n.short_) + " short, " + std::to_string(n.bad_flags) +
                    " bad flags, " + std::to_string(n.other_vni) + " other VNI, " + std::to_string(n.bad_frame) +
                    " bad frames, " + std::to_string(n.no_buffer) + " no buffer; " +
                    std::to_string(n.checksums_filled) + " checksums filled");
  } else {
    j["vxlan"] = nullptr;
  }
  if (end->memif) {
    const memif::Config& c = end->memif->config();
    const memif::Counters n = end->memif->counters();
    const bool connected = end->memif->connected();
    const std::string peer = end->memif->peer_name();
    const std::string last = end->memif->last_disconnect();
    j["memif"] = {
        {"text", memif::format_config(c, false)},
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
        {"relaying", end->memif->relaying()},
        {"relay_buffers", end->memif->relay_buffers() ? json(*end->memif->relay_buffers()) : json()},
        {"relay_buffers_free", end->memif->relay_buffers_free() ? json(*end->memif->relay_buffers_free()) : json()},
        {"connected", connected},
        {"peer", connected ? json(peer) : json()},
        {"last_disconnect", last.empty() ? json() : json(last)},
        {"counters",
         {{"sent", n.sent},
          {"received", n.received},
          {"ring_full", n.ring_full},
          {"not_connected", n.not_connected},
          {"bad_descriptor", n.bad_descriptor},
          {"no_buffer", n.no_buffer},
          {"connects", n.connects},
          {"disconnects", n.disconnects},
          {"held_back", n.held_back},
          {"relayed", n.relayed}}}};
    lines.push_back("\tmemif: " + memif::format_config(c, false));
    lines.push_back(std::string("\tmemif link: ") +
                    (connected ? "connected to " + peer
                               : "not connected" + (last.empty() ? std::string() : " (last: " + last + ")")));
    lines.push_back("\tmemif frames: " + std::to_string(n.sent) + " sent, " + std::to_string(n.received) +
                    " received; dropped: " + std::to_string(n.ring_full) + " ring full, " +
                    std::to_string(n.not_connected) + " not connected, " + std::to_string(n.bad_descriptor) +
                    " bad descriptors, " + std::to_string(n.no_buffer) + " no buffer; " + std::to_string(n.connects) +
                    " connects, " + std::to_string(n.disconnects) + " disconnects" +
                    (c.flow_control ? "; " + std::to_string(n.held_back) + " reads held back" : std::string()));
    if (c.zero_copy) {
      lines.push_back("\tmemif zero-copy: " + std::string(end->memif->relaying() ? "relaying" : "not relaying") + ", " +
                      std::to_string(n.relayed) + " frames crossed uncopied; " +
                      std::to_string(end->memif->relay_buffers_free().value_or(0)) + " of " +
                      std::to_string(end->memif->relay_buffers().value_or(0)) + " relay buffers free");
    }
  } else {
    j["memif"] = nullptr;
  }
  lines.push_back("\tvnet: " + ifp.vnet_name());
  j["ifconfig"] = format_ifconfig(ifp, lines);
  j["counters_text"] = format_counters(ifp.counters());
  return j;
}

std::vector<int> Controller::event_fds() const {
  std::vector<int> fds;
  for (const auto& [name, ns] : netns_) fds.push_back(ns.monitor->fd());
  return fds;
}

void Controller::on_events(int fd) {
  for (auto& [name, ns] : netns_) {
    if (ns.monitor->fd() != fd) continue;
    os::LinkEvents events;
    if (!ns.monitor->drain_events(events)) spdlog::warn("netlink events of {} failed", name);
    const std::string vnet = name;  // resync may erase the entry
    // Only the links the events name: a full pass per event would make a
    // namespace with n ends cost O(n) per change.
    resync(vnet, events.lost ? nullptr : &events.ifindexes);
    return;
  }
}

void Controller::resync(const std::string& vnet, const std::set<int>* only) {
  auto ns = netns(vnet);
  if (!ns) return;
  std::vector<std::string> gone;
  bool changed = false;
  std::optional<std::map<int, std::vector<os::AddressInfo>>> addresses;
  for (auto& [name, end] : ends_) {
    Interface& ifp = *end.ifp;
    if (ifp.vnet_name() != vnet) continue;
    if (only != nullptr && end.ifindex != 0 && !only->contains(end.ifindex)) continue;
    auto link = (*ns)->control->link(name);
    if (!link) {
      if (link.status().value() == ENODEV) gone.push_back(name);
      continue;
    }
    end.ifindex = link->index;
    const bool up = (link->flags & IFF_UP) != 0;
    if (up != ifp.is_up()) {
      (void)ifp.set_up(up);
      spdlog::info("{}: {} (seen in {})", name, up ? "UP" : "DOWN", vnet);
      changed = true;
    }
    if (link->mtu != ifp.mtu()) {
      if (Status s = ifp.set_mtu(link->mtu); s) {
        spdlog::info("{}: mtu {} (seen in {})", name, link->mtu, vnet);
        changed = true;
      } else {
        spdlog::warn("{}; setting mtu {} back", s.message(), ifp.mtu());
        (void)(*ns)->control->set_mtu(name, ifp.mtu());
      }
    }
    if (link->mac != ifp.mac()) {
      if (Status s = ifp.set_mac(link->mac); s) {
        spdlog::info("{}: ether {} (seen in {})", name, link->mac.to_string(), vnet);
        changed = true;
      }
    }
    if (link->alias != ifp.description()) {
      if (Status s = ifp.set_description(link->alias); s) changed = true;
    }
    if (!addresses) {
      auto all = (*ns)->control->addresses_by_link();
      if (!all) continue;
      addresses = std::move(*all);
    }
    std::vector<os::AddressInfo>& now = (*addresses)[link->index];
    if (cidrs(now) != cidrs(end.addresses)) changed = true;
    end.addresses = std::move(now);
  }
  for (const std::string& name : gone) {
    spdlog::error("{}: device deleted in {} behind epaird's back", name, vnet);
    teardown(name, "its device " + name + " was deleted");
  }
  if (changed) save();
}

void Controller::report_device_gone(const std::string& ifname, const std::string& reason) {
  {
    std::lock_guard lock(gone_mutex_);
    gone_.emplace_back(ifname, reason);
  }
  if (wake_fd_ >= 0) {
    const std::uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
  }
}

void Controller::check() {
  std::vector<std::pair<std::string, std::string>> gone;
  {
    std::lock_guard lock(gone_mutex_);
    gone.swap(gone_);
  }
  for (const auto& [name, reason] : gone) {
    if (find(name) == nullptr) continue;
    spdlog::error("{}: device gone ({})", name, reason);
    teardown(name, "its device " + name + " went away");
  }
  std::vector<std::string> removed;
  for (const auto& [vnet, ns] : netns_) {
    if (vnet == kHostVnet) continue;
    auto id = os::netns_id(ns.spec);
    if (!id || !(*id == ns.id)) removed.push_back(vnet);
  }
  for (const std::string& vnet : removed) {
    std::vector<std::string> victims;
    for (const auto& [name, end] : ends_) {
      if (end.ifp->vnet_name() == vnet) victims.push_back(name);
    }
    spdlog::error("namespace {} was removed; destroying the pairs with an end there", vnet);
    for (const std::string& name : victims) teardown(name, "namespace " + vnet + " was removed");
    release_unused_netns();
  }
}

std::string Controller::state_text() const {
  json pairs = json::array();
  std::map<int, json> by_unit;
  for (const auto& [name, end] : ends_) {
    const Interface& ifp = *end.ifp;
    json e = {{"name", name},     {"vnet", ifp.vnet_name()},        {"up", ifp.is_up()},
              {"mtu", ifp.mtu()}, {"ether", ifp.mac().to_string()}, {"description", ifp.description()}};
    if (auto it = netns_.find(ifp.vnet_name()); it != netns_.end() && ifp.vnet_name() != kHostVnet) {
      e["netns_dev"] = it->second.id.dev;
      e["netns_ino"] = it->second.id.ino;
    }
    e["addresses"] = cidrs(end.addresses);
    if (auto impairment = ifp.impairment()) e["impair"] = format_impairment(*impairment);
    if (const std::string words = attachment(end); !words.empty()) e["attach"] = words;
    by_unit[ifp.unit()]["unit"] = ifp.unit();
    by_unit[ifp.unit()]["ends"].push_back(e);
  }
  for (auto& [unit, pair] : by_unit) pairs.push_back(pair);
  const json state = {{"version", kStateVersion}, {"mac_index", engine_->mac_index()}, {"pairs", pairs}};
  return state.dump(2) + "\n";
}

namespace {

// What one change can add to the state file at most: a new pair's two ends
// with their addresses, or a long description.
constexpr std::size_t kStateSlack = std::size_t{16} * 1024;

bool write_all(int fd, const char* data, std::size_t size) {
  for (off_t offset = 0; size != 0;) {
    const ssize_t n = ::pwrite(fd, data, size, offset);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<std::size_t>(n);
    offset += n;
  }
  return true;
}

}  // namespace

Status Controller::reserve_state() {
  if (config_.state_file.empty()) return {};
  const std::filesystem::path tmp = config_.state_file.string() + ".tmp";
  std::string text = state_text();
  text.resize(text.size() + kStateSlack, ' ');
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  bool ok = fd >= 0 && write_all(fd, text.data(), text.size()) && ::fsync(fd) == 0;
  const int error = errno;
  if (fd >= 0) ::close(fd);
  if (!ok) {
    if (fd >= 0) ::unlink(tmp.c_str());
    spdlog::error("cannot save state in {}: {}; change refused", config_.state_file.parent_path().string(),
                  std::strerror(error));
    return {error, "cannot save state in " + config_.state_file.parent_path().string() + ": " + std::strerror(error) +
                       " (nothing was changed)"};
  }
  return {};
}

void Controller::save() const {
  if (config_.state_file.empty()) return;
  const std::filesystem::path tmp = config_.state_file.string() + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    spdlog::error("cannot write {}: {}", tmp.string(), std::strerror(errno));
    return;
  }
  const std::string text = state_text();
  bool ok = write_all(fd, text.data(), text.size()) && ::ftruncate(fd, static_cast<off_t>(text.size())) == 0 &&
            ::fsync(fd) == 0;
  ok = ::close(fd) == 0 && ok;
  if (!ok || ::rename(tmp.c_str(), config_.state_file.c_str()) != 0) {
    spdlog::error("cannot save {}: {}", config_.state_file.string(), std::strerror(errno));
    ::unlink(tmp.c_str());
    return;
  }
  const int dir = ::open(config_.state_file.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
}

void Controller::restore() {
  const json state = std::exchange(saved_, json::object());
  for (const json& pair : state.value("pairs", json::array())) {
    const std::string name = "epair" + std::to_string(pair.value("unit", -1));
    std::string problem;
    if (auto created = engine_->create(name); !created) problem = created.status().message();
    int placed = 0;
    for (const json& e : pair.value("ends", json::array())) {
      if (!problem.empty()) break;
      const std::string ifname = e.value("name", "");
      const std::string vnet = e.value("vnet", std::string(kHostVnet));
      auto ns = netns(vnet);
      if (!ns) {
        problem = ns.status().message();
        break;
      }
      if (vnet != kHostVnet && !((*ns)->id == os::NetnsId{e.value("netns_dev", 0ULL), e.value("netns_ino", 0ULL)})) {
        problem = "namespace " + vnet;
        problem += " is not the one " + ifname + " was in";
        break;
      }
      if (vnet != kHostVnet) {
        if (Status s = engine_->move(ifname, vnet); !s) {
          problem = s.message();
          break;
        }
      }
      ++placed;
      std::optional<os::TapDevice> device;
      Status attached = os::run_in_netns((*ns)->fd.get(), [&]() -> Status {
        auto tap = os::TapDevice::attach(ifname);
        if (!tap) return tap.status();
        device = std::move(*tap);
        return {};
      });
      if (!attached) {
        problem = attached.message();
        break;
      }
      auto ifp = engine_->find(ifname, vnet);
      if (auto mac = MacAddress::parse(e.value("ether", "")); mac) (void)ifp->set_mac(*mac);
      (void)ifp->set_mtu(e.value("mtu", Interface::kDefaultMtu));
      (void)ifp->set_description(e.value("description", ""));
      (void)ifp->set_up(e.value("up", false));
      End& end = ends_[ifname];
      end.ifp = ifp;
      if (Status s = start_end(end, std::move(*device)); !s) {
        problem = s.message();
        break;
      }
      if (const std::string words = e.value("impair", ""); !words.empty()) {
        if (Status s = impair(end, words); !s) spdlog::error("{}: impairment not restored: {}", ifname, s.message());
      }
      if (const std::string words = e.value("attach", ""); !words.empty()) {
        if (Status s = attach(end, words); !s) spdlog::error("{}: not attached again: {}", ifname, s.message());
      }
    }
    if (problem.empty() && placed != 2) problem = "incomplete record";
    if (!problem.empty()) {
      spdlog::error("cannot re-adopt {}: {}; destroying it", name, problem);
      for (const std::string& side : {name + "a", name + "b"}) {
        if (End* end = find(side)) {
          stop_end(*end);
          (void)end->tap->device().set_persistent(false);
          ends_.erase(side);
        }
      }
      for (const json& e : pair.value("ends", json::array())) {
        if (auto ns = netns(e.value("vnet", std::string(kHostVnet))); ns)
          (void)(*ns)->control->remove(e.value("name", ""));
      }
      for (const std::string& vnet : engine_->vnets()) {
        if (engine_->find(name + "a", vnet)) (void)engine_->destroy(name + "a", vnet);
      }
      continue;
    }
    spdlog::info("re-adopted {}", name);
  }
  std::vector<std::string> vnets;
  for (const auto& [vnet, ns] : netns_) vnets.push_back(vnet);
  for (const std::string& vnet : vnets) resync(vnet);
  release_unused_netns();
  save();
}

}  // namespace epair::daemon
