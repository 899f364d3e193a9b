#include "netns_registry.hpp"

#include <stdexcept>

namespace epair::daemon {

NetnsRegistry::NetnsRegistry(Engine& engine) : engine_(engine) {
  auto host = open(std::string(kHostVnet));
  if (!host) throw std::runtime_error(host.status().message());
  host_ = *host;
}

Result<Netns*> NetnsRegistry::open(const std::string& vnet) {
  if (auto it = open_.find(vnet); it != open_.end()) return &it->second;
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
    if (Status s = engine_.create_vnet(vnet); !s && s.value() != EEXIST) return s;
  }
  return &open_.emplace(vnet, std::move(ns)).first->second;
}

const Netns* NetnsRegistry::find(std::string_view vnet) const {
  auto it = open_.find(vnet);
  return it == open_.end() ? nullptr : &it->second;
}

std::string NetnsRegistry::vnet_of(const os::NetnsSpec& spec) const {
  if (spec.pid == 0) return spec.name;
  auto id = os::netns_id(spec);
  if (!id) return spec.name;
  for (const auto& [name, ns] : open_) {
    if (ns.id == *id) return name;
  }
  return os::named_netns(*id).value_or(spec.name);
}

Result<Netns*> NetnsRegistry::open_target(std::string_view target) {
  auto spec = os::parse_netns(target);
  if (!spec) return spec.status();
  return open(vnet_of(*spec));
}

void NetnsRegistry::release_unused(const std::set<std::string>& used) {
  for (auto it = open_.begin(); it != open_.end();) {
    if (it->first == kHostVnet || used.contains(it->first)) {
      ++it;
      continue;
    }
    (void)engine_.destroy_vnet(it->first);
    it = open_.erase(it);
  }
}

std::vector<std::string> NetnsRegistry::removed() const {
  std::vector<std::string> removed;
  for (const auto& [vnet, ns] : open_) {
    if (vnet == kHostVnet) continue;
    auto id = os::netns_id(ns.spec);
    if (!id || !(*id == ns.id)) removed.push_back(vnet);
  }
  return removed;
}

std::vector<int> NetnsRegistry::event_fds() const {
  std::vector<int> fds;
  for (const auto& [name, ns] : open_) fds.push_back(ns.monitor->fd());
  return fds;
}

const std::string* NetnsRegistry::vnet_of_monitor(int fd) const {
  for (const auto& [name, ns] : open_) {
    if (ns.monitor->fd() == fd) return &name;
  }
  return nullptr;
}

std::vector<std::string> NetnsRegistry::vnets() const {
  std::vector<std::string> vnets;
  for (const auto& [vnet, ns] : open_) vnets.push_back(vnet);
  return vnets;
}

}  // namespace epair::daemon
