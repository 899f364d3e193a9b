// The relay buffers of one epair whose two ends are memif clients with
// zero-copy on: one sealed memfd that both ends announce to their servers
// as region 1, so that a buffer one server filled can be handed to the
// other as it is.
//
// Each direction has its own buffers, twice the ring size: as many as the
// receiving end's S2C ring can hold given to its server, and as many again
// on the other end's C2S ring, waiting for that server to read them. A
// buffer is in exactly one place at a time: free here, given on an S2C
// ring, or on a C2S ring until the server's tail passes it; the ends keep
// their own record of which buffer is in which slot and never take a
// buffer's place from what a server wrote in a descriptor.
//
// Both servers map the whole region, and keep their mapping after they
// leave: a server sees every frame that crosses the pair in either
// direction, and could write into buffers in flight. That is DPDK's
// zero-copy bargain too, which is why it is asked for (zero-copy on).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "epair/interface.hpp"
#include "epair/status.hpp"
#include "unique_fd.hpp"

namespace epair::memif {

/// One buffer of a frame on its way across, and the frame.
struct RelayHop {
  std::uint32_t buffer;
  std::uint32_t length;
};
struct RelayFrame {
  /// kCross: to be handed over; the others are dropped where they were
  /// read (a buffer outside its size, no bytes, too short or too long).
  enum Kind : std::uint8_t { kCross, kBad, kEmpty, kWrongSize };
  std::uint32_t first_hop;
  std::uint32_t hops;
  std::uint32_t bytes;
  Kind kind;
  bool placed;  ///< set by the end that put it on its C2S ring
};

class RelayPool {
 public:
  /// The pool of the pair `ifp` belongs to, made by the first end that
  /// asks; EINVAL when it was made with another ring or buffer size.
  static Result<std::shared_ptr<RelayPool>> for_pair(const Interface& ifp, std::uint32_t ring_size,
                                                     std::uint32_t buffer_size);
  ~RelayPool();
  RelayPool(const RelayPool&) = delete;
  RelayPool& operator=(const RelayPool&) = delete;

  /// The direction of frames received on the end of side 'a' or 'b'.
  static unsigned direction_of(const Interface& ifp) { return ifp.side() == 'a' ? 0 : 1; }

  int fd() const { return fd_.get(); }
  std::uint64_t region_size() const { return region_size_; }
  std::uint32_t buffer_size() const { return buffer_size_; }
  /// Buffers of each direction.
  std::uint32_t per_direction() const { return per_direction_; }
  std::uint32_t offset(std::uint32_t buffer) const { return buffer * buffer_size_; }

  /// Takes up to out.size() free buffers of a direction; how many it took.
  std::uint32_t take(unsigned direction, std::span<std::uint32_t> out);
  /// Returns buffers to their direction.
  void put(unsigned direction, std::span<const std::uint32_t> buffers);
  std::uint32_t free_count(unsigned direction) const;

 private:
  RelayPool(os::UniqueFd fd, std::uint32_t ring_size, std::uint32_t buffer_size);

  struct Direction {
    mutable std::mutex mutex;
    std::vector<std::uint32_t> free;
  };

  os::UniqueFd fd_;
  const std::uint32_t ring_size_;
  const std::uint32_t buffer_size_;
  const std::uint32_t per_direction_;
  const std::uint64_t region_size_;
  Direction directions_[2];
  const Interface* key_ = nullptr;
};

}  // namespace epair::memif
