#include "memif_relay.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <map>

namespace epair::memif {

namespace {

// One pool per pair, found through the pair's end a; the entry goes with
// the last end that holds the pool.
std::mutex registry_mutex;
std::map<const Interface*, std::weak_ptr<RelayPool>> registry;

}  // namespace

RelayPool::RelayPool(os::UniqueFd fd, std::uint32_t ring_size, std::uint32_t buffer_size)
    : fd_(std::move(fd)),
      ring_size_(ring_size),
      buffer_size_(buffer_size),
      per_direction_(2 * ring_size),
      region_size_(std::uint64_t{2} * per_direction_ * buffer_size) {
  for (unsigned d = 0; d < 2; ++d) {
    auto& free = directions_[d].free;
    free.reserve(per_direction_);
    // Taken from the back: buffers in address order.
    for (std::uint32_t i = per_direction_; i-- > 0;) free.push_back(d * per_direction_ + i);
  }
}

RelayPool::~RelayPool() {
  std::lock_guard lock(registry_mutex);
  auto it = registry.find(key_);
  if (it != registry.end() && it->second.expired()) registry.erase(it);
}

Result<std::shared_ptr<RelayPool>> RelayPool::for_pair(const Interface& ifp, std::uint32_t ring_size,
                                                       std::uint32_t buffer_size) {
  const std::shared_ptr<Interface> peer = ifp.peer();
  if (!peer) return Status{ENXIO, "memif: zero-copy: " + ifp.name() + " has no peer"};
  const Interface* key = ifp.side() == 'a' ? &ifp : peer.get();
  std::lock_guard lock(registry_mutex);
  if (auto it = registry.find(key); it != registry.end()) {
    if (auto pool = it->second.lock()) {
      if (pool->ring_size_ != ring_size || pool->buffer_size_ != buffer_size) {
        return Status{EINVAL, "memif: zero-copy: " + peer->name() + " has ring-size " +
                                  std::to_string(pool->ring_size_) + " and buffer-size " +
                                  std::to_string(pool->buffer_size_) + ", and so must this end"};
      }
      return pool;
    }
  }
  os::UniqueFd fd(::memfd_create("epair-memif-relay", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd) return Status{errno, std::string("memif: zero-copy: memfd_create: ") + std::strerror(errno)};
  std::shared_ptr<RelayPool> pool(new RelayPool(std::move(fd), ring_size, buffer_size));
  if (::ftruncate(pool->fd(), static_cast<off_t>(pool->region_size_)) != 0 ||
      ::fcntl(pool->fd(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
    return Status{errno, std::string("memif: zero-copy: relay region: ") + std::strerror(errno)};
  }
  pool->key_ = key;
  registry[key] = pool;
  return pool;
}

std::uint32_t RelayPool::take(unsigned direction, std::span<std::uint32_t> out) {
  Direction& d = directions_[direction];
  std::lock_guard lock(d.mutex);
  const auto n = static_cast<std::uint32_t>(std::min(out.size(), d.free.size()));
  std::copy(d.free.end() - n, d.free.end(), out.begin());
  d.free.resize(d.free.size() - n);
  return n;
}

void RelayPool::put(unsigned direction, std::span<const std::uint32_t> buffers) {
  Direction& d = directions_[direction];
  std::lock_guard lock(d.mutex);
  d.free.insert(d.free.end(), buffers.begin(), buffers.end());
}

std::uint32_t RelayPool::free_count(unsigned direction) const {
  const Direction& d = directions_[direction];
  std::lock_guard lock(d.mutex);
  return static_cast<std::uint32_t>(d.free.size());
}

}  // namespace epair::memif
