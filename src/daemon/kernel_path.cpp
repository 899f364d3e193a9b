// The kernel data path: each end is a veth with the end's name, whose peer
// ("v" and the end's name) and a TAP ("t" and the end's name) sit in
// epaird's hidden namespace; an end renamed later keeps the hidden devices
// named after the name it was made with (KernelPath::hidden_name). The program on the hidden veth carries what
// the end transmits into the peer end, or to the engine through the TAP
// when the cable needs user space; what the engine delivers to an end is
// written into the end's TAP, whose program hands it to the end.
#include <spdlog/spdlog.h>

#include <cstdio>

#include "controller.hpp"
#include "hidden_netns.hpp"

namespace epair::daemon {

// An epaird from before renames kept no hidden name: the end's name was it.
std::string hidden_name_in_state(const json& end) { return end.value("hidden", end.value("name", "")); }

namespace {

std::string hidden_veth_name(const std::string& name) { return "v" + name; }
// A veth takes nothing longer than its MTU from its peer: the hidden one
// takes anything the end may send, and the program judges the length.
constexpr std::uint32_t kHiddenVethMtu = 65535;
// What an end sends on the engine's way waits in its hidden TAP's queue for
// epaird to read it: as deep as an end's receive queue (SPEC.md), so that a
// reader held up for a moment loses nothing the engine would have kept;
// what a full queue drops, the end's oqdrops count (End::counters()).
constexpr std::uint32_t kHiddenTapQueue = 4096;
std::string hidden_tap_name(const std::string& name) { return "t" + name; }
// A pair's hidden devices share a device group, so that destroy deletes
// them in one batch; group 0 is every other device's.
std::uint32_t hidden_group(int unit) { return static_cast<std::uint32_t>(unit) + 1; }

// The hidden name of the first end of the state file on the kernel path,
// whose hidden devices hold the programs a previous epaird attached.
std::optional<std::string> first_kernel_end(const json& state) {
  for (const json& pair : state.value("pairs", json::array())) {
    for (const json& e : pair.value("ends", json::array())) {
      if (e.value("datapath", "tap") == "kernel") return hidden_name_in_state(e);
    }
  }
  return std::nullopt;
}

}  // namespace

bool Controller::saved_kernel_pairs() const { return first_kernel_end(saved_).has_value(); }

// Opening, in this order:
// 1. The hidden namespace is opened where the state directory keeps it, or
//    made there, with a route socket in it.
// 2. The programs a previous epaird attached to the first kernel end of the
//    state file are adopted, maps and counters with them; when there is
//    none, or they are gone, the programs are loaded afresh, which proves
//    that the kernel can run them.
// 3. One thread is started to read the hidden TAPs of all kernel ends.
Status Controller::open_kernel_path() {
  auto fd = kernel::open_hidden_netns(config_.hidden_netns);
  if (!fd) return fd.status();
  hidden_netns_ = std::move(*fd);
  Status opened = os::run_in_netns(hidden_netns_.get(), [this]() -> Status {
    // No IPv6 there: a hidden device's own router solicitations and
    // listener reports would reach the ends as frames no end sent.
    for (const char* knob :
         {"/proc/sys/net/ipv6/conf/default/disable_ipv6", "/proc/sys/net/ipv6/conf/all/disable_ipv6"}) {
      if (std::FILE* file = std::fopen(knob, "w")) {
        std::fputs("1\n", file);
        std::fclose(file);
      }
    }
    auto socket = os::RouteSocket::open();
    if (!socket) return socket.status();
    hidden_control_ = std::make_unique<os::RouteSocket>(std::move(*socket));
    return hidden_control_->set_up("lo", true);
  });
  if (!opened) return opened;
  if (auto name = first_kernel_end(saved_)) {
    auto veth = hidden_control_->link(hidden_veth_name(*name));
    auto tap = hidden_control_->link(hidden_tap_name(*name));
    if (veth && tap) {
      auto adopted = kernel::Datapath::adopt(hidden_netns_.get(), {veth->index, tap->index});
      if (adopted) {
        datapath_ = std::move(*adopted);
        spdlog::info("kernel data path: adopted the programs ({}) and counters on {}'s hidden devices",
                     datapath_->hook(), *name);
        return start_hidden_poller();
      }
      spdlog::warn("{}; loading the programs afresh", adopted.status().message());
    }
  }
  auto loaded = kernel::Datapath::load(hidden_netns_.get());
  if (!loaded) return loaded.status();
  datapath_ = std::move(*loaded);
  spdlog::info("kernel data path: programs loaded, attached by {}", datapath_->hook());
  return start_hidden_poller();
}

// With --busy-poll, its thread reads every TAP, hidden ones too.
Status Controller::start_hidden_poller() {
  if (poller_) return {};
  hidden_poller_ = std::make_unique<tap::Poller>(std::chrono::microseconds(0));
  return hidden_poller_->start();
}

// An end's devices, in this order:
// 1. The TAP, made in the hidden namespace at at.tap, its queue deep, UP:
//    the engine's way in and out.
// 2. The veth: made from the hidden namespace at at.veth, where the
//    program's maps look for it, the end's name its peer in the host's
//    namespace; both down until the end is configured and its peer comes up.
// 3. Their indexes in the hidden namespace, for the program's maps; the
//    hidden veth's MTU the largest there is.
// What was made is taken away again when a step fails.
Result<tap::Device> Controller::make_kernel_end(End& end, const kernel::HiddenEnd& at) {
  const std::string& name = end.ifp->name();
  std::optional<tap::Device> device;
  Status made = os::run_in_netns(hidden_netns_.get(), [&]() -> Status {
    auto tap = tap::Device::create(hidden_tap_name(name), at.tap);
    if (!tap) return tap.status();
    device = std::move(*tap);
    return {};
  });
  if (!made) return Status{made.value(), name + ": hidden TAP: " + made.message()};
  auto undo = [&]() { (void)device->set_persistent(false); };
  if (Status s = device->set_carrier(true); !s) spdlog::warn("{}", s.message());
  if (Status s = hidden_control_->set_tx_queue_length(hidden_tap_name(name), kHiddenTapQueue); !s) {
    undo();
    return s;
  }
  if (Status s = hidden_control_->set_up(hidden_tap_name(name), true); !s) {
    undo();
    return s;
  }
  if (Status s = hidden_control_->add_veth(hidden_veth_name(name), name, netns_->host().fd.get(), at.veth); !s) {
    undo();
    if (s.value() == EEXIST) return Status{EEXIST, "interface " + name + " already exists"};
    if (s.value() == EBUSY) {
      return Status{EBUSY, name + ": index " + std::to_string(at.veth) + " of its hidden veth is taken"};
    }
    return s;
  }
  auto veth = hidden_control_->link(hidden_veth_name(name));
  auto tap = hidden_control_->link(hidden_tap_name(name));
  Status sized = veth ? hidden_control_->set_mtu(hidden_veth_name(name), kHiddenVethMtu) : veth.status();
  const std::uint32_t group = hidden_group(end.ifp->unit());
  if (sized) sized = hidden_control_->set_group(hidden_veth_name(name), group);
  if (sized) sized = hidden_control_->set_group(hidden_tap_name(name), group);
  if (!veth || !tap || !sized) {
    (void)hidden_control_->remove(hidden_veth_name(name));
    undo();
    return !sized ? sized : tap.status();
  }
  end.kernel = kernel_path_of(end.ifp, name, {veth->index, tap->index});
  return std::move(*device);
}

KernelPath Controller::kernel_path_of(const std::shared_ptr<Interface>& ifp, const std::string& hidden_name,
                                      const kernel::HiddenEnd& hidden) {
  std::weak_ptr<Interface> weak = ifp;
  auto linux_drops = [this, weak, tap = hidden_tap_name(hidden_name)]() -> LinuxDrops {
    LinuxDrops dropped;
    if (auto link = hidden_control_->link(tap)) dropped.oqdrops = link->tx_dropped;
    auto end = weak.lock();
    const Netns* ns = end ? netns_->find(end->vnet_name()) : nullptr;
    if (ns == nullptr) return dropped;
    if (auto link = ns->control->link(end->name())) dropped.oerrors = link->tx_dropped;
    return dropped;
  };
  return KernelPath{datapath_.get(), hidden, hidden_name, EPAIR_WAY_KERNEL, {}, std::move(linux_drops)};
}

void Controller::remove_kernel_end(End& end) {
  if (!end.kernel) return;
  datapath_->remove_end(end.kernel->hidden);
  // The veth goes whole with its hidden side, wherever the end is.
  (void)hidden_control_->remove(hidden_veth_name(end.kernel->hidden_name));
}

void Controller::forget_kernel_devices(const std::string& name) {
  if (!hidden_control_ || name.empty()) return;
  (void)hidden_control_->remove(hidden_veth_name(name));
  (void)hidden_control_->remove(hidden_tap_name(name));
}

// A pair made by an epaird before groups has none: its devices go one by
// one.
void Controller::remove_kernel_devices(int unit, const std::string (&hidden_names)[2]) {
  if (hidden_control_->remove_group(hidden_group(unit))) return;
  for (const std::string& name : hidden_names) forget_kernel_devices(name);
}

std::shared_ptr<CounterBlock> Controller::kernel_engine_counters(const json& end) const {
  if (!datapath_) return nullptr;
  auto veth = hidden_control_->link(hidden_veth_name(hidden_name_in_state(end)));
  auto config = veth ? datapath_->config({veth->index, 0}) : Result<epair_end_config>(veth.status());
  return config ? datapath_->engine_counters(config->slot) : nullptr;
}

Status Controller::adopt_kernel_end(End& end, const std::string& name, std::optional<tap::Device>& device) {
  if (!datapath_) return Status{ENOTSUP, "the kernel data path is not open"};
  auto veth = hidden_control_->link(hidden_veth_name(name));
  if (!veth) return Status{ENODEV, name + ": its hidden veth is gone"};
  Status attached = os::run_in_netns(hidden_netns_.get(), [&]() -> Status {
    auto tap = tap::Device::attach(hidden_tap_name(name));
    if (!tap) return tap.status();
    device = std::move(*tap);
    return {};
  });
  if (!attached) return attached;
  auto tap = hidden_control_->link(hidden_tap_name(name));
  if (!tap) return tap.status();
  end.kernel = kernel_path_of(end.ifp, name, {veth->index, tap->index});
  return {};
}

// Carrier as veth's: the end has it while its peer is UP, because epaird
// sets the end's hidden veth up only then. The program is told the same,
// so that a frame racing the change is dropped and counted in oerrors;
// what the end sends while it has no carrier, Linux drops and counts in
// the end's own TX dropped, which its oerrors add (End::counters()).
// The programs follow the end's Ethernet address too (Datapath::set_mac()).
void Controller::follow_carrier_in_kernel(End& end) {
  // The engine's writes into the TAP need it; parking took it away.
  if (Status s = end.device().set_carrier(true); !s) spdlog::warn("{}", s.message());
  end.carrier = end.ifp->subscribe([this](Interface& ifp, InterfaceEvent event) {
    if (event != InterfaceEvent::kLinkState && event != InterfaceEvent::kMtu && event != InterfaceEvent::kAddress &&
        event != InterfaceEvent::kImpairment && event != InterfaceEvent::kTaps) {
      return;
    }
    const EndId id{ifp.unit(), ifp.side()};
    if (std::this_thread::get_id() != control_thread_) {
      post_kernel_event(id, event);
    } else if (End* found = find(id)) {
      apply_kernel_event(*found, event);
    }
  });
  apply_kernel_event(end, InterfaceEvent::kLinkState);
  apply_kernel_event(end, InterfaceEvent::kAddress);
}

// Read when applied, not when posted: of two changes made in turn, the
// state the second leaves is the one the devices end with.
void Controller::apply_kernel_event(End& end, InterfaceEvent event) {
  if (!end.kernel) return;
  switch (event) {
    case InterfaceEvent::kLinkState: {
      const bool up = end.ifp->link_state() == LinkState::kUp;
      if (Status s = datapath_->set_peer_up(end.kernel->hidden, up); !s) spdlog::warn("{}", s.message());
      if (Status s = hidden_control_->set_up(hidden_veth_name(end.kernel->hidden_name), up); !s) {
        spdlog::warn("{}", s.message());
      }
      break;
    }
    case InterfaceEvent::kMtu:
      if (Status s = datapath_->set_mtu(end.kernel->hidden, end.ifp->mtu()); !s) spdlog::warn("{}", s.message());
      break;
    // Until the program knows the new address, frames for it take the
    // longer way in, and frames for the old one are taken as the end's.
    case InterfaceEvent::kAddress:
      if (Status s = datapath_->set_mac(end.kernel->hidden, end.ifp->mac()); !s) spdlog::warn("{}", s.message());
      break;
    case InterfaceEvent::kImpairment:
    case InterfaceEvent::kTaps:
      update_ways_of_pair(end);
      break;
    default:
      break;
  }
}

void Controller::post_kernel_event(EndId id, InterfaceEvent event) {
  std::lock_guard lock(posted_mutex_);
  kernel_events_.emplace_back(id, event);
  wake_locked();
}

void Controller::park_in_kernel(End& end) {
  if (Status s = datapath_->set_peer_up(end.kernel->hidden, false); !s) spdlog::warn("{}", s.message());
  if (Status s = hidden_control_->set_up(hidden_veth_name(end.kernel->hidden_name), false); !s) {
    spdlog::warn("{}", s.message());
  }
}

void Controller::update_way(End& end) {
  if (!end.kernel) return;
  const End* peer = peer_of(end);
  std::string reason;
  if (end.ifp->impairment()) {
    reason = "impair";
  } else if (end.ifp->tapped() || (peer != nullptr && peer->ifp->tapped())) {
    reason = "capture";
  } else if (end.attachment() != nullptr) {
    reason = end.attachment_kind();
  } else if (peer != nullptr && peer->attachment() != nullptr) {
    reason = "peer " + std::string(peer->attachment_kind());
  }
  const epair_way way = reason.empty() ? EPAIR_WAY_KERNEL : EPAIR_WAY_ENGINE;
  // Written even when unchanged here: an adopted end's map entry may say
  // what a previous epaird wanted.
  if (Status s = datapath_->set_way(end.kernel->hidden, way); !s) {
    spdlog::error("{}", s.message());
    return;
  }
  const bool changed = way != end.kernel->way || reason != end.kernel->engine_reason;
  end.kernel->way = way;
  end.kernel->engine_reason = reason;
  if (changed) spdlog::info("{}: datapath {}", end.ifp->name(), end.datapath());
}

void Controller::update_ways_of_pair(End& end) {
  update_way(end);
  if (End* peer = peer_of(end)) update_way(*peer);
}

}  // namespace epair::daemon
