#include "memif_rings.hpp"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <utility>

namespace epair::memif {

namespace {

Status errno_status(const std::string& what) { return {errno, "memif: " + what + ": " + std::strerror(errno)}; }

}  // namespace

Mapping::Mapping(Mapping&& other) noexcept
    : base_(std::exchange(other.base_, nullptr)), size_(std::exchange(other.size_, 0)) {}

Mapping& Mapping::operator=(Mapping&& other) noexcept {
  if (this != &other) {
    if (base_ != nullptr) ::munmap(base_, size_);
    base_ = std::exchange(other.base_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

Mapping::~Mapping() {
  if (base_ != nullptr) ::munmap(base_, size_);
}

Result<Mapping> Mapping::map(int fd, std::uint64_t size) {
  void* base = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) return errno_status("mapping a region");
  Mapping m;
  m.base_ = static_cast<std::uint8_t*>(base);
  m.size_ = size;
  return m;
}

void signal(int fd) {
  const std::uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(fd, &one, sizeof one);
}

void drain(int fd) {
  std::uint64_t value;
  [[maybe_unused]] ssize_t n = ::read(fd, &value, sizeof value);
}

Status make_nonblocking(int fd, const std::string& what) {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) return errno_status(what);
  return {};
}

std::uint32_t receivable(Ring& ring, bool server) {
  // acquire: pairs with the peer's release of the index after it wrote
  // the descriptors and buffers.
  const std::uint16_t produced =
      ring_index(ring.base, server ? kRingHeadOffset : kRingTailOffset).load(std::memory_order_acquire);
  return static_cast<std::uint16_t>(produced - ring.cursor);
}

std::uint32_t transmittable(Ring& ring, bool server) {
  if (server) {
    const std::uint16_t given = ring_index(ring.base, kRingHeadOffset).load(std::memory_order_acquire);
    return static_cast<std::uint16_t>(given - ring.cursor);
  }
  const std::uint16_t done = ring_index(ring.base, kRingTailOffset).load(std::memory_order_acquire);
  const auto in_flight = static_cast<std::uint16_t>(ring.cursor - done);
  return in_flight > ring.size ? ring.size + 1 : ring.size - in_flight;
}

namespace {

// A line this side is about to write, asked for in exclusive state: the peer
// read it last, and a read prefetch would bring it shared, to be taken over
// once more at the store. PREFETCHW is a no-op on x86-64 processors that
// predate it; __builtin_prefetch(p, 1) emits it only under -mprfchw.
inline void prefetch_exclusive(const void* p) {
#if defined(__x86_64__)
  asm volatile("prefetchw %0" : : "m"(*static_cast<const char*>(p)));
#else
  __builtin_prefetch(p, 1);
#endif
}

}  // namespace

void prefetch_buffers(Ring& ring, bool server, bool for_write, const Regions& regions, const Layout& layout,
                      std::uint16_t at, std::uint32_t count) {
  const std::uint32_t mask = ring.size - 1;
  // A client filling its own C2S ring knows where its buffers are.
  if (for_write && !server) {
    for (std::uint32_t i = 0; i < count; ++i) {
      prefetch_exclusive(regions.maps[0].base() + layout.buffer_offset(true, ring.index, (at + i) & mask));
    }
    return;
  }
  // A server rewrites each descriptor it fills: all their lines are asked
  // for first, so that reading the buffer addresses out of them waits for
  // one line instead of each in turn.
  if (for_write) {
    constexpr std::uint32_t kPerLine = 64 / kDescriptorSize;
    for (std::uint32_t i = 0; i < count; i += kPerLine) prefetch_exclusive(descriptor_at(ring.base, (at + i) & mask));
    if (count != 0) prefetch_exclusive(descriptor_at(ring.base, (at + count - 1) & mask));
  }
  for (std::uint32_t i = 0; i < count; ++i) {
    const Descriptor d = read_descriptor(descriptor_at(ring.base, (at + i) & mask));
    if (!descriptor_fits(d, regions.sizes)) continue;
    if (for_write) {
      prefetch_exclusive(regions.buffer(d));
    } else {
      __builtin_prefetch(regions.buffer(d), 0);
    }
  }
}

void release_received(Ring& ring, bool server, const Layout& layout) {
  if (server) {
    // release: the peer may reuse the buffers once it sees the tail.
    ring_index(ring.base, kRingTailOffset).store(ring.cursor, std::memory_order_release);
  } else {
    give_buffers(ring, layout);
  }
}

void give_buffers(Ring& ring, const Layout& layout) {
  const std::uint32_t mask = ring.size - 1;
  auto head = ring_index(ring.base, kRingHeadOffset);
  std::uint16_t h = head.load(std::memory_order_relaxed);
  const auto until = static_cast<std::uint16_t>(ring.cursor + ring.size);
  for (; h != until; ++h) {
    write_descriptor(
        descriptor_at(ring.base, h & mask),
        {0, 0, layout.buffer_size, static_cast<std::uint32_t>(layout.buffer_offset(false, ring.index, h & mask)), 0});
  }
  // release: publishes the descriptors to the server's acquire of head.
  head.store(h, std::memory_order_release);
}

std::optional<std::uint32_t> place_frame(Ring& ring, bool server, const Regions& regions, const Layout& layout,
                                         std::uint16_t slot, std::uint32_t free_slots,
                                         std::span<const std::uint8_t> bytes) {
  const std::uint32_t mask = ring.size - 1;
  const std::uint8_t* from = bytes.data();
  std::size_t left = bytes.size();
  std::uint32_t used = 0;
  while (left != 0 && used < free_slots) {
    std::uint8_t* place = descriptor_at(ring.base, (slot + used) & mask);
    Descriptor d;
    if (server) {
      d = read_descriptor(place);
      if (d.length == 0 || !descriptor_fits(d, regions.sizes)) return std::nullopt;
    } else {
      d = {0, 0, layout.buffer_size,
           static_cast<std::uint32_t>(layout.buffer_offset(true, ring.index, (slot + used) & mask)), 0};
    }
    const auto n = static_cast<std::uint32_t>(std::min<std::size_t>(d.length, left));
    std::memcpy(regions.buffer(d), from, n);
    from += n;
    left -= n;
    d.length = n;
    d.flags = left != 0 ? kDescriptorNext : 0;
    write_descriptor(place, d);
    ++used;
  }
  return left == 0 ? used : 0;
}

void mask_interrupts(Ring& ring, bool masked) {
  // relaxed: the peer reads the flag after publishing, with no order to
  // keep but the fence in publish().
  ring_index(ring.base, kRingFlagsOffset).store(masked ? kRingFlagMaskInterrupt : 0, std::memory_order_relaxed);
}

bool publish(Ring& ring, bool server, std::uint16_t slot) {
  ring.cursor = slot;
  // release: the descriptors and buffers written before are the peer's
  // once it acquires the index.
  ring_index(ring.base, server ? kRingTailOffset : kRingHeadOffset).store(slot, std::memory_order_release);
  // seq_cst: the index store must be visible before the flag is read. A
  // receiver that unmasks and then reads the index sees our frames, or we
  // see the flag cleared and signal; without the fence both could miss.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  const std::uint16_t flags = ring_index(ring.base, kRingFlagsOffset).load(std::memory_order_relaxed);
  if ((flags & kRingFlagMaskInterrupt) != 0 || !ring.interrupt) return false;
  signal(ring.interrupt.get());
  return true;
}

Result<ClientMemory> make_client_memory(const Layout& layout, std::uint8_t log2_ring_size, Regions& regions) {
  ClientMemory memory;
  memory.layout = layout;
  const std::uint64_t size = layout.region_size();
  memory.fd.reset(::memfd_create("epair-memif", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!memory.fd) return errno_status("memfd_create");
  if (::ftruncate(memory.fd.get(), static_cast<off_t>(size)) != 0) return errno_status("region size");
  // The server refuses a region that could shrink under it.
  if (::fcntl(memory.fd.get(), F_ADD_SEALS, F_SEAL_SHRINK) != 0) return errno_status("sealing the region");
  auto map = Mapping::map(memory.fd.get(), size);
  if (!map) return map.status();
  std::uint8_t* base = map->base();
  regions.add(std::move(*map));
  for (int dir = 0; dir < 2; ++dir) {
    const bool c2s = dir == 1;
    for (std::uint16_t i = 0; i < layout.queues; ++i) {
      AddRing ring;
      ring.flags = c2s ? AddRing::kFlagC2S : 0;
      ring.index = i;
      ring.offset = static_cast<std::uint32_t>(layout.ring_offset(c2s, i));
      ring.log2_ring_size = log2_ring_size;
      std::uint8_t* at = base + ring.offset;
      std::memcpy(at, &kCookie, sizeof kCookie);
      for (std::uint32_t slot = 0; slot < layout.ring_size; ++slot) {
        write_descriptor(descriptor_at(at, slot),
                         {0, 0, 0, static_cast<std::uint32_t>(layout.buffer_offset(c2s, i, slot)), 0});
      }
      memory.rings[dir].push_back(ring);
      os::UniqueFd interrupt(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
      if (!interrupt) return errno_status("eventfd");
      memory.interrupts[dir].push_back(std::move(interrupt));
    }
  }
  return memory;
}

Result<RingSet> map_rings(const RingAnnouncements& announced, RingInterrupts& interrupts, const Regions& regions,
                          bool server, bool polling) {
  RingSet set;
  for (int dir = 0; dir < 2; ++dir) {
    const bool c2s = dir == 1;
    for (std::size_t i = 0; i < announced[dir].size(); ++i) {
      const AddRing& a = announced[dir][i];
      Ring ring;
      ring.base = regions.maps[a.region].base() + a.offset;
      ring.size = 1u << a.log2_ring_size;
      ring.c2s = c2s;
      ring.index = static_cast<std::uint16_t>(i);
      ring.interrupt = std::move(interrupts[dir][i]);
      std::uint32_t cookie;
      std::memcpy(&cookie, ring.base, sizeof cookie);
      if (cookie != kCookie) return Status{EPROTO, "ring " + std::to_string(i) + " has a wrong cookie"};
      if (server) {
        ring_index(ring.base, kRingHeadOffset).store(0, std::memory_order_relaxed);
        ring_index(ring.base, kRingTailOffset).store(0, std::memory_order_relaxed);
      }
      if (server == c2s) {
        mask_interrupts(ring, polling);
        set.rx.push_back(std::move(ring));
      } else {
        set.tx.push_back(std::move(ring));
      }
    }
  }
  return set;
}

}  // namespace epair::memif
