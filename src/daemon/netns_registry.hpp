// The network namespaces epaird's ends live in, each opened once: its
// descriptor, its identity (to notice a namespace removed and its name
// reused), and two rtnetlink sockets made inside it, one to change links
// and one to hear of changes. Each is also a vnet of the engine.
//
// Guarantees:
// - "host" (epaird's own namespace) is opened at construction and kept.
// - A namespace stays open while an end lives in it; release_unused()
//   closes the others and destroys their vnets.
// - Used from the daemon's control thread only.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "epair/engine.hpp"
#include "netlink.hpp"
#include "netns.hpp"
#include "unique_fd.hpp"

namespace epair::daemon {

struct Netns {
  os::NetnsSpec spec;
  os::NetnsId id;
  os::UniqueFd fd;
  std::unique_ptr<os::RouteSocket> control;
  std::unique_ptr<os::RouteSocket> monitor;
};

class NetnsRegistry {
 public:
  /// Opens the host namespace; throws std::runtime_error when it cannot.
  explicit NetnsRegistry(Engine& engine);

  Netns& host() { return *host_; }
  /// The namespace of vnet, opened (and its vnet created) on first use:
  /// ENOENT when it does not exist.
  Result<Netns*> open(const std::string& vnet);
  /// The namespace of vnet if it is open; null otherwise.
  const Netns* find(std::string_view vnet) const;
  /// The namespace a `vnet` argument names ("ns1" or a pid), as open().
  Result<Netns*> open_target(std::string_view target);
  /// The vnet that spec is: a pid's namespace is the vnet of the same
  /// namespace when one is open or has an `ip netns` name.
  std::string vnet_of(const os::NetnsSpec& spec) const;
  /// Closes every namespace but the host and those in used.
  void release_unused(const std::set<std::string>& used);
  /// The vnets whose namespace is gone or is another one now.
  std::vector<std::string> removed() const;

  /// Descriptors of the monitor sockets, to poll.
  std::vector<int> event_fds() const;
  /// The vnet whose monitor socket is fd; null when none.
  const std::string* vnet_of_monitor(int fd) const;
  std::vector<std::string> vnets() const;

 private:
  Engine& engine_;
  std::map<std::string, Netns, std::less<>> open_;
  Netns* host_ = nullptr;
};

}  // namespace epair::daemon
