// epaird's hidden namespace: where each end's veth peer and TAP live, out
// of the host's `ip link` and of `ip netns list`.
//
// Guarantees:
// - A bind mount of the namespace at a file of epaird's state directory
//   keeps it, and every device in it, while no epaird runs; the next epaird
//   opens the same namespace there.
// - A file there that is not such a mount (the machine rebooted) is made
//   into one of a new namespace.
#pragma once

#include <filesystem>

#include "epair/status.hpp"
#include "unique_fd.hpp"

namespace epair::kernel {

/// The hidden namespace mounted at path, made first if there is none.
Result<os::UniqueFd> open_hidden_netns(const std::filesystem::path& path);
/// Unmounts and removes it: the namespace and the devices in it go when
/// the last descriptor of it closes.
Status remove_hidden_netns(const std::filesystem::path& path);

}  // namespace epair::kernel
