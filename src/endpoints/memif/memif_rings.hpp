// The shared memory of a memif connection as one side works it: the
// regions it mapped, the rings in them, and the ring operations that
// epaird's memif end and the client API (epair/memif_client.hpp) share.
//
// Who moves which index: on a C2S ring the client fills descriptors with
// its own buffers and moves head; the server reads up to head and moves
// tail. On an S2C ring the client gives empty buffers by moving head; the
// server fills them up to head and moves tail; the client reads up to tail
// and gives the buffers again. Head and tail are free-running 16-bit
// counters; a slot is counter & (ring size - 1).
//
// Everything in this memory is the peer's to change at any moment: each
// descriptor is copied once and checked against the region sizes before
// its buffer is touched, and every count derived from the peer's index is
// checked against the ring size by the caller.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <vector>

#include "epair/status.hpp"
#include "memif_protocol.hpp"
#include "unique_fd.hpp"

namespace epair::memif {

/// A region mapped shared, read and write; unmapped on destruction.
class Mapping {
 public:
  Mapping() = default;
  Mapping(Mapping&& other) noexcept;
  Mapping& operator=(Mapping&& other) noexcept;
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping();

  /// Maps the first size bytes of fd.
  static Result<Mapping> map(int fd, std::uint64_t size);

  std::uint8_t* base() const { return base_; }
  std::uint64_t size() const { return size_; }

 private:
  std::uint8_t* base_ = nullptr;
  std::uint64_t size_ = 0;
};

/// The regions one connection mapped, by index.
struct Regions {
  std::vector<Mapping> maps;
  std::vector<std::uint64_t> sizes;  ///< maps[i].size(), as descriptor_fits() takes them

  void add(Mapping map) {
    sizes.push_back(map.size());
    maps.push_back(std::move(map));
  }
  /// Precondition: descriptor_fits(d, sizes).
  std::uint8_t* buffer(const Descriptor& d) const { return maps[d.region].base() + d.offset; }
};

/// One ring as this side sees it.
struct Ring {
  std::uint8_t* base = nullptr;
  std::uint32_t size = 0;
  std::uint16_t cursor = 0;      ///< the next descriptor this side reads or fills
  std::uint16_t prefetched = 0;  ///< transmit: slots before it, from cursor on, were prefetched
  std::uint16_t index = 0;
  bool c2s = true;
  os::UniqueFd interrupt;  ///< the peer's wakeup, shared with it
};

inline std::atomic_ref<std::uint16_t> ring_index(std::uint8_t* ring, std::size_t offset) {
  return std::atomic_ref<std::uint16_t>(*reinterpret_cast<std::uint16_t*>(ring + offset));
}

inline std::uint8_t* descriptor_at(std::uint8_t* ring, std::uint32_t slot) {
  return ring + kRingHeaderSize + std::size_t{slot} * kDescriptorSize;
}

inline Descriptor read_descriptor(const std::uint8_t* at) {
  static_assert(sizeof(Descriptor) == kDescriptorSize);
  Descriptor d;
  std::memcpy(&d, at, sizeof d);
  return d;
}

inline void write_descriptor(std::uint8_t* at, const Descriptor& d) { std::memcpy(at, &d, sizeof d); }

/// Adds one to an eventfd: wakes whoever sleeps on it.
void signal(int fd);
/// Reads an eventfd back to zero (non-blocking: a peer's eventfd may not be).
void drain(int fd);
/// Sets O_NONBLOCK on a descriptor a peer passed.
Status make_nonblocking(int fd, const std::string& what);

/// Descriptors the peer put on a receive ring since ring.cursor. More
/// than ring.size means the peer broke the ring.
std::uint32_t receivable(Ring& ring, bool server);
/// Descriptors this side may fill on a transmit ring. More than ring.size
/// means the peer broke the ring.
std::uint32_t transmittable(Ring& ring, bool server);

/// What one frame on a receive ring came to.
struct Chain {
  std::uint16_t descriptors = 0;  ///< taken off the ring
  bool fits = true;               ///< every buffer inside the regions, every copy taken
  bool complete = true;           ///< false: the chain ran past the descriptors available
};

/// Reads the frame whose first descriptor is at `at`, within `available`
/// descriptors, handing each buffer that lies inside the regions to
/// copy(const std::uint8_t*, std::uint32_t) -> bool. After one buffer is
/// outside or a copy returns false, the rest of the chain is only skipped.
template <class Copy>
Chain read_chain(Ring& ring, std::uint16_t at, std::uint32_t available, const Regions& regions, Copy&& copy) {
  Chain chain;
  const std::uint32_t mask = ring.size - 1;
  for (;;) {
    const Descriptor d = read_descriptor(descriptor_at(ring.base, (at + chain.descriptors) & mask));
    ++chain.descriptors;
    if (chain.fits) chain.fits = descriptor_fits(d, regions.sizes) && copy(regions.buffer(d), d.length);
    if ((d.flags & kDescriptorNext) == 0) return chain;
    if (chain.descriptors == available) {
      chain.complete = false;
      return chain;
    }
  }
}

/// Starts loading the first line of the buffers behind `count`
/// descriptors from `at` on, before a burst reads them: each lies in the
/// peer's cache, and waiting for one line at a time costs more than the
/// copies. for_write when this side is about to fill them.
void prefetch_buffers(Ring& ring, bool server, bool for_write, const Regions& regions, const Layout& layout,
                      std::uint16_t at, std::uint32_t count);

/// After reading up to ring.cursor: a server hands the descriptors back
/// (tail), a client gives every buffer the server does not hold (head).
void release_received(Ring& ring, bool server, const Layout& layout);

/// Client: gives the server every buffer of an S2C ring it does not hold
/// yet, at the client's own offsets whatever the server left in the
/// descriptors.
void give_buffers(Ring& ring, const Layout& layout);

/// Copies bytes onto a transmit ring from descriptor `slot` on, chaining
/// over at most `free_slots` descriptors. Returns the descriptors used, 0
/// when the frame does not fit, or nothing when a server finds a
/// descriptor the client gave outside the regions.
std::optional<std::uint32_t> place_frame(Ring& ring, bool server, const Regions& regions, const Layout& layout,
                                         std::uint16_t slot, std::uint32_t free_slots,
                                         std::span<const std::uint8_t> bytes);

/// Asks the peer to signal the eventfd of a ring this side receives on
/// after it puts frames there (masked: not to, this side polls).
void mask_interrupts(Ring& ring, bool masked);

/// Hands the peer every descriptor before `slot` (a server's tail, a
/// client's head) and signals its interrupt unless it masked it; true when
/// it signalled.
bool publish(Ring& ring, bool server, std::uint16_t slot);

/// Rings as a client announced them, [0] S2C and [1] C2S, and their
/// interrupt eventfds.
using RingAnnouncements = std::array<std::vector<AddRing>, 2>;
using RingInterrupts = std::array<std::vector<os::UniqueFd>, 2>;

/// A client's region 0, laid out as Layout says: a sealed memfd with the
/// rings (cookie written, each descriptor pointing at its own buffer), the
/// ring announcements and one interrupt eventfd per ring.
struct ClientMemory {
  os::UniqueFd fd;
  Layout layout;
  RingAnnouncements rings;
  RingInterrupts interrupts;
};
/// Makes the region and adds its mapping to regions.
Result<ClientMemory> make_client_memory(const Layout& layout, std::uint8_t log2_ring_size, Regions& regions);

/// The rings announced, mapped, and split into what this side receives
/// and transmits. A server resets both indexes. Interrupts are asked for
/// on the receive rings unless polling. EPROTO for a wrong cookie.
struct RingSet {
  std::vector<Ring> rx;
  std::vector<Ring> tx;
};
Result<RingSet> map_rings(const RingAnnouncements& announced, RingInterrupts& interrupts, const Regions& regions,
                          bool server, bool polling);

}  // namespace epair::memif
