// One end of a pair as epaird holds it: the engine's interface, its Linux
// device and at most one attachment. On the TAP data path the device is a
// persistent TAP with the end's name; on the kernel data path it is a veth
// with the end's name, whose peer and a TAP beside it are hidden in
// epaird's namespace, and the program there moves the frames.
//
// Guarantees:
// - The TAP device exists as long as the End: a tap::Endpoint carries it
//   while the end is not attached; an attachment parks it, without carrier,
//   for detach to bring back. device() reaches it either way.
// - counters() are what the engine and, on the kernel path, the program
//   counted: each frame counted by the one that carried it. On the kernel
//   path Linux drops some frames before either sees them, and counts them
//   on a device: what the end sends while its peer is down (oerrors), and
//   what waits for the engine in a full hidden TAP (oqdrops).
// - An End is used from the daemon's control thread only.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "datapath.hpp"
#include "epair/interface.hpp"
#include "memif_endpoint.hpp"
#include "netlink.hpp"
#include "tap_endpoint.hpp"
#include "vxlan_endpoint.hpp"

namespace epair::daemon {

/// What an attached end's frames go to instead of its TAP.
using Attachment = std::variant<std::shared_ptr<vxlan::Endpoint>, std::shared_ptr<memif::Endpoint>>;

/// The metric families of every kind of attachment, in the order the
/// metrics show them.
inline constexpr std::span<const MetricFamily> kAttachmentMetricFamilies[] = {memif::kMetricFamilies,
                                                                              vxlan::kMetricFamilies};

/// An attachment with the TAP it replaced, kept for detach.
struct Attached {
  tap::Device parked;
  Attachment endpoint;
};

/// An end as its pair knows it, whatever it is called now: what another
/// thread posts to the control thread names it so, since a rename may come
/// between.
struct EndId {
  int unit = 0;
  char side = 'a';
};

/// What Linux dropped of what an end sent, before the program or the
/// engine saw it, in SPEC.md's counters.
struct LinuxDrops {
  /// The end's own TX dropped: sent while its peer was down.
  std::uint64_t oerrors = 0;
  /// Its hidden TAP's TX dropped: the engine's way, its queue full.
  std::uint64_t oqdrops = 0;
};

/// An end on the kernel data path: the program and the end's hidden devices.
struct KernelPath {
  kernel::Datapath* datapath = nullptr;
  kernel::HiddenEnd hidden;
  /// The end's name when its hidden devices were made, theirs after it
  /// ("v" and "t" before it); a rename leaves them as they are.
  std::string hidden_name;
  /// Which way frames the end transmits go now, and why the engine's.
  epair_way way = EPAIR_WAY_KERNEL;
  std::string engine_reason;
  /// Read from the devices' counters when asked.
  std::function<LinuxDrops()> linux_drops;
};

struct End {
  std::shared_ptr<Interface> ifp;
  /// The TAP's endpoint (null only before start), or the attachment.
  std::variant<std::shared_ptr<tap::Endpoint>, Attached> transport;
  Subscription carrier;
  std::vector<os::AddressInfo> addresses;
  int ifindex = 0;                   ///< the device's index in its namespace; 0 until read
  std::optional<KernelPath> kernel;  ///< set on the kernel data path

  /// "tap", "kernel" or "engine (impair)": the way the end's frames go.
  std::string datapath() const {
    if (!kernel) return "tap";
    return kernel->way == EPAIR_WAY_KERNEL ? "kernel" : "engine (" + kernel->engine_reason + ")";
  }

  InterfaceCounters counters() const {
    InterfaceCounters sum = ifp->counters();
    if (!kernel) return sum;
    kernel::add_counters(sum, kernel->datapath->counters(kernel->hidden));
    const LinuxDrops dropped = kernel->linux_drops();
    sum.oerrors += dropped.oerrors;
    sum.oqdrops += dropped.oqdrops;
    return sum;
  }

  tap::Device& device() {
    if (auto* attached = std::get_if<Attached>(&transport)) return attached->parked;
    return std::get<std::shared_ptr<tap::Endpoint>>(transport)->device();
  }
  /// The TAP's endpoint; null while attached.
  tap::Endpoint* tap() const {
    auto* tap = std::get_if<std::shared_ptr<tap::Endpoint>>(&transport);
    return tap != nullptr ? tap->get() : nullptr;
  }
  const Attachment* attachment() const {
    auto* attached = std::get_if<Attached>(&transport);
    return attached != nullptr ? &attached->endpoint : nullptr;
  }
  vxlan::Endpoint* vxlan() const { return attached_as<vxlan::Endpoint>(); }
  memif::Endpoint* memif() const { return attached_as<memif::Endpoint>(); }
  /// "vxlan" or "memif"; empty when not attached.
  std::string_view attachment_kind() const {
    if (vxlan() != nullptr) return "vxlan";
    if (memif() != nullptr) return "memif";
    return {};
  }
  /// The attachment's own counters; none when not attached.
  std::optional<CounterTable> counter_table() const {
    const Attachment* attachment = this->attachment();
    if (attachment == nullptr) return std::nullopt;
    return std::visit([](const auto& endpoint) { return endpoint->counter_table(); }, *attachment);
  }

 private:
  template <typename Kind>
  Kind* attached_as() const {
    const Attachment* attachment = this->attachment();
    if (attachment == nullptr) return nullptr;
    auto* endpoint = std::get_if<std::shared_ptr<Kind>>(attachment);
    return endpoint != nullptr ? endpoint->get() : nullptr;
  }
};

}  // namespace epair::daemon
