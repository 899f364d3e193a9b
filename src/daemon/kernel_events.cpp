// Following the kernel: what `ip` changes on an end's device (UP, MTU,
// address, alias, its name), devices deleted behind epaird's back, and
// namespaces removed. epaird's model gives way to the kernel's, except where the
// engine refuses a value (an MTU out of range is set back).
#include <net/if.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include "controller.hpp"

namespace epair::daemon {

std::vector<int> Controller::event_fds() const { return netns_->event_fds(); }

void Controller::on_events(int fd) {
  const std::string* name = netns_->vnet_of_monitor(fd);
  if (name == nullptr) return;
  const std::string vnet = *name;  // resync may close the namespace
  auto ns = netns_->open(vnet);
  if (!ns) return;
  os::LinkEvents events;
  if (!(*ns)->monitor->drain_events(events)) spdlog::warn("netlink events of {} failed", vnet);
  // Only the links the events name: a full pass per event would make a
  // namespace with n ends cost O(n) per change.
  resync(vnet, events.lost ? nullptr : &events.ifindexes);
}

void Controller::resync(const std::string& vnet, const std::set<int>* only) {
  auto ns = netns_->open(vnet);
  if (!ns) return;
  std::vector<std::string> gone;
  std::vector<std::pair<std::string, std::string>> renamed;
  bool changed = false;
  std::optional<std::map<int, std::vector<os::AddressInfo>>> addresses;
  for (auto& [name, end] : ends_) {
    Interface& ifp = *end.ifp;
    if (ifp.vnet_name() != vnet) continue;
    if (only != nullptr && end.ifindex != 0 && !only->contains(end.ifindex)) continue;
    // By index once known: a device renamed with `ip link set ... name` is
    // the same device, not one deleted.
    auto link = end.ifindex != 0 ? (*ns)->control->link(end.ifindex) : (*ns)->control->link(name);
    if (!link) {
      if (link.status().value() == ENODEV) gone.push_back(name);
      continue;
    }
    end.ifindex = link->index;
    if (link->name != name) renamed.emplace_back(name, link->name);
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
        (void)(*ns)->control->set_mtu(link->name, ifp.mtu());
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
    if (os::cidrs_of(now) != os::cidrs_of(end.addresses)) changed = true;
    end.addresses = std::move(now);
  }
  for (const auto& [old, now] : renamed) {
    Status s =
        find(now) != nullptr ? Status{EEXIST, "interface " + now + " already exists"} : engine_->rename(old, now, vnet);
    if (!s) {
      spdlog::error("{}: renamed {} in {}, which epaird cannot follow: {}", old, now, vnet, s.message());
      continue;
    }
    follow_rename(old, now);
    changed = true;
  }
  for (const std::string& name : gone) {
    spdlog::error("{}: device deleted in {} behind epaird's back", name, vnet);
    teardown(name, "its device " + name + " was deleted");
  }
  if (changed) save();
}

std::optional<os::LinkInfo> Controller::refresh_addresses(End& end) {
  auto ns = netns_->open(end.ifp->vnet_name());
  if (!ns) return std::nullopt;
  auto link = (*ns)->control->link(end.ifp->name());
  if (!link) return std::nullopt;
  auto addresses = (*ns)->control->addresses(link->index);
  if (addresses) end.addresses = std::move(*addresses);
  return std::move(*link);
}

void Controller::report_device_gone(EndId id, const std::string& reason) {
  std::lock_guard lock(posted_mutex_);
  gone_.emplace_back(id, reason);
  wake_locked();
}

void Controller::set_wake_fd(int fd) {
  std::lock_guard lock(posted_mutex_);
  wake_fd_ = fd;
  wake_locked();
}

void Controller::wake_locked() const {
  if (wake_fd_ >= 0) {
    const std::uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
  }
}

void Controller::check() {
  std::vector<std::pair<EndId, std::string>> gone;
  std::vector<std::pair<EndId, InterfaceEvent>> kernel_events;
  {
    std::lock_guard lock(posted_mutex_);
    gone.swap(gone_);
    kernel_events.swap(kernel_events_);
  }
  for (const auto& [id, event] : kernel_events) {
    if (End* end = find(id)) apply_kernel_event(*end, event);
  }
  for (const auto& [id, reason] : gone) {
    const End* end = find(id);
    if (end == nullptr) continue;
    const std::string name = end->ifp->name();
    spdlog::error("{}: device gone ({})", name, reason);
    teardown(name, "its device " + name + " went away");
  }
  for (const std::string& vnet : netns_->removed()) {
    std::vector<std::string> victims;
    for (const auto& [name, end] : ends_) {
      if (end.ifp->vnet_name() == vnet) victims.push_back(name);
    }
    spdlog::error("namespace {} was removed; destroying the pairs with an end there", vnet);
    for (const std::string& name : victims) teardown(name, "namespace " + vnet + " was removed");
    release_unused_netns();
  }
}

}  // namespace epair::daemon
