// Attachments: an end's stack becomes a VXLAN tunnel or a memif peer. Its
// TAP is parked meanwhile, kept without carrier for detach to bring back,
// so the device a user configured never changes.
#include <spdlog/spdlog.h>

#include "controller.hpp"
#include "ethtool.hpp"

namespace epair::daemon {

std::string Controller::attachment_words(const End& end) {
  if (const vxlan::Endpoint* tunnel = end.vxlan()) return "vxlan " + vxlan::format_config(tunnel->config());
  if (const memif::Endpoint* peer = end.memif()) return "memif " + memif::format_config(peer->config());
  return {};
}

Status Controller::attach(End& end, const std::string& words) {
  const std::string& name = end.ifp->name();
  if (Status s = control::check_attach(words); !s) return Status{EINVAL, name + ": " + s.message()};
  const std::string previous = attachment_words(end);
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

void Controller::park_tap(End& end, Attachment attachment) {
  stop_end(end);
  std::visit([&end](const auto& endpoint) { end.ifp->attach(endpoint); }, attachment);
  tap::Device device = end.tap()->take_device();
  (void)device.set_carrier(false);
  end.transport = Attached{std::move(device), std::move(attachment)};
  if (end.kernel) park_in_kernel(end);
  if (End* peer = peer_of(end)) update_offloads(*peer);
  update_ways_of_pair(end);
}

Status Controller::open_tunnel(End& end, const vxlan::Config& config) {
  const std::string& name = end.ifp->name();
  auto ns = netns_->open(end.ifp->vnet_name());
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
  park_tap(end, std::move(tunnel));
  spdlog::info("{}: attached to vxlan {}", name, vxlan::format_config(config));
  return {};
}

Status Controller::open_memif(End& end, const memif::Config& config) {
  const std::string& name = end.ifp->name();
  auto made = memif::Endpoint::open(end.ifp, config, engine_->pool());
  if (!made) return Status{made.status().value(), name + ": " + made.status().message()};
  std::shared_ptr<memif::Endpoint> peer = std::move(*made);
  if (Status s = peer->start(); !s) return Status{s.value(), name + ": " + s.message()};
  park_tap(end, std::move(peer));
  spdlog::info("{}: attached to memif {}", name, memif::format_config(config, false));
  return {};
}

Status Controller::detach(End& end) {
  const std::string& name = end.ifp->name();
  if (end.attachment() == nullptr) return Status{EINVAL, name + ": detach: not attached"};
  const std::string kind(end.attachment_kind());
  stop_end(end);
  end.ifp->detach();
  tap::Device device = std::move(std::get<Attached>(end.transport).parked);
  end.transport = std::shared_ptr<tap::Endpoint>();
  end.ifp->set_endpoint_link(true);
  if (Status s = start_end(end, std::move(device)); !s) return s;
  if (End* peer = peer_of(end)) update_offloads(*peer);
  update_ways_of_pair(end);
  spdlog::info("{}: detached from {}", name, kind);
  return {};
}

// What the end offers Linux: transmit checksum offload while the pair has
// TXCSUM and TXCSUM_IPV6 (Linux has one switch for both families; without
// it segmentation offload goes too), VLAN tag offload while the end has
// VLAN_HWTAGGING, and full-sized frames only while the cable needs no
// wire-sized ones.
void Controller::update_offloads(End& end) {
  const std::uint32_t caps = end.ifp->enabled_capabilities();
  const bool checksum = (caps & kPairCapabilities) == kPairCapabilities;
  const bool vlan = (caps & kCapVlanHwTagging) != 0;
  const std::string name = end.ifp->name();
  const Netns* ns = netns_->find(end.ifp->vnet_name());
  Status set = ns == nullptr ? Status{ENOENT, name + ": namespace " + end.ifp->vnet_name() + " is not open"}
                             : os::run_in_netns(ns->fd.get(), [&]() -> Status {
                                 if (Status s = os::set_tx_vlan_offload(name, vlan); !s) return s;
                                 return end.kernel ? os::set_tx_checksum(name, checksum) : Status{};
                               });
  if (!set) spdlog::warn("{}", set.message());
  tap::Endpoint* tap = end.tap();
  if (tap == nullptr) return;
  // Corruption must hit frames as a wire carries them, with their own
  // checksums; a VXLAN peer sends each frame as one datagram, a memif peer
  // as buffers without offload metadata. Either way the kernel segments
  // and checksums in software meanwhile. On the kernel path the TAP is the
  // hidden one, the engine's way in, and the end's own veth says the rest.
  const auto impairment = end.ifp->impairment();
  const End* peer = peer_of(end);
  const bool wire_sized =
      (impairment && impairment->corrupt_percent != 0) || (peer != nullptr && peer->attachment() != nullptr);
  const bool offloads = !wire_sized && (end.kernel || checksum);
  if (Status s = tap->device().set_offloads(offloads); !s) spdlog::warn("{}", s.message());
}

void Controller::follow_carrier(End& end) {
  std::weak_ptr<tap::Endpoint> weak = std::get<std::shared_ptr<tap::Endpoint>>(end.transport);
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

}  // namespace epair::daemon
