// Frames and the pools they live in.
//
// A Frame is an Ethernet frame in a pooled buffer with headroom, plus the
// per-packet metadata that FreeBSD keeps in the mbuf packet header. Frames are
// never allocated with malloc on the data path: they come from a FramePool and
// go back to the pool they came from. A frame has exactly one owner at a time;
// handing it to Interface::transmit() or to an Endpoint moves ownership.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>

#include "epair/ring.hpp"

namespace epair {

class Interface;
class FramePool;

/// FrameMeta::flags bits.
enum FrameFlag : std::uint32_t {
  kFrameBroadcast = 1u << 0,    ///< destination is ff:ff:ff:ff:ff:ff (set on transmit)
  kFrameMulticast = 1u << 1,    ///< destination has the group bit (set on transmit)
  kFrameVlanTag = 1u << 2,      ///< vlan_tci holds a hardware VLAN tag (FreeBSD M_VLANTAG)
  kFrameSendTag = 1u << 3,      ///< send_tag holds a sender-only tag (FreeBSD CSUM_SND_TAG)
  kFrameFlowHash = 1u << 4,     ///< flow_hash is valid and chooses the receive queue
  kFrameCsumPartial = 1u << 5,  ///< checksum still to be filled at csum_start + csum_offset
  kFrameCsumValid = 1u << 6,    ///< payload checksums already verified
  kFrameGso = 1u << 7,          ///< a large segment that gso_size and gso_type describe
};

/// FrameMeta::gso_type values: those of virtio_net_hdr (and so of Linux TAP
/// and vhost), so that endpoints speaking it copy the byte unchanged.
inline constexpr std::uint8_t kGsoTcpV4 = 1;
inline constexpr std::uint8_t kGsoUdp = 3;
inline constexpr std::uint8_t kGsoTcpV6 = 4;
inline constexpr std::uint8_t kGsoUdpL4 = 5;
inline constexpr std::uint8_t kGsoEcn = 0x80;

/// An m_tag: metadata a sender attaches to a frame. Non-persistent tags never
/// cross the cable (FreeBSD m_tag_delete_nonpersistent()).
struct FrameTag {
  std::uint32_t type = 0;
  bool persistent = false;
  std::uint64_t value = 0;
};

/// Per-frame metadata. Reset by FramePool::alloc().
struct FrameMeta {
  static constexpr std::size_t kMaxTags = 4;

  std::uint32_t flags = 0;
  std::uint32_t flow_hash = 0;
  /// The interface that received the frame; set when it crosses the cable.
  Interface* rcvif = nullptr;
  std::uint16_t vlan_tci = 0;
  std::uint16_t csum_start = 0;
  std::uint16_t csum_offset = 0;
  std::uint16_t gso_size = 0;
  std::uint8_t gso_type = 0;
  std::uint8_t tag_count = 0;
  // Below the first cache line of a Frame: touched only by frames that use
  // them, and not reset on allocation (tags beyond tag_count are garbage).
  std::uint64_t send_tag = 0;
  std::array<FrameTag, kMaxTags> tags{};

  /// Clears every field for a fresh frame, touching one cache line only:
  /// send_tag and the tag slots are left as they are, meaningless until
  /// kFrameSendTag is set or tag_count counts them.
  void reset() {
    flags = 0;
    flow_hash = 0;
    rcvif = nullptr;
    vlan_tci = 0;
    csum_start = 0;
    csum_offset = 0;
    gso_size = 0;
    gso_type = 0;
    tag_count = 0;
  }

  /// Adds a tag; false when kMaxTags are already attached.
  bool add_tag(const FrameTag& tag);
  /// Removes every tag that is not persistent, keeping the order of the rest.
  void delete_nonpersistent_tags();
};

/// A frame as a wire carries it: how many frames and their bytes.
struct WireCount {
  std::uint32_t frames = 1;
  std::uint64_t bytes = 0;
};

/// One Ethernet frame in a pooled buffer: [headroom | data | tailroom].
/// Laid out so that what every frame touches (buffer position, size and the
/// common metadata) shares its first cache line.
class alignas(kCacheLine) Frame {
 private:
  friend class FramePool;
  FramePool* pool_ = nullptr;
  std::uint8_t* buffer_ = nullptr;
  std::uint32_t capacity_ = 0;
  std::uint32_t offset_ = 0;
  std::uint32_t size_ = 0;
  // In the first line's padding: a free that finds it set is a double free.
  bool in_pool_ = false;

  WireCount gso_on_wire() const;

 public:
  std::uint8_t* data() { return buffer_ + offset_; }
  const std::uint8_t* data() const { return buffer_ + offset_; }
  std::uint32_t size() const { return size_; }
  std::span<std::uint8_t> bytes() { return {data(), size_}; }
  std::span<const std::uint8_t> bytes() const { return {data(), size_}; }
  std::uint32_t headroom() const { return offset_; }
  std::uint32_t tailroom() const { return capacity_ - offset_ - size_; }
  std::uint32_t capacity() const { return capacity_; }
  /// The longest frame this one puts on a wire: size(), or for a GSO frame
  /// its headers plus one gso_size segment (what an MTU must hold).
  std::uint32_t wire_size() const;
  /// This frame on a wire: one frame of size() bytes, or for a GSO frame
  /// its payload cut into gso_size segments, each with the headers.
  /// Counters count these, as the kernel data path counts a GSO packet.
  WireCount on_wire() const { return (meta.flags & kFrameGso) == 0 ? WireCount{1, size_} : gso_on_wire(); }

  /// Grows the data at its end; returns the new bytes, or nullptr when the
  /// tailroom is too small (the frame is unchanged).
  std::uint8_t* append(std::uint32_t n);
  /// Grows the data at its front (a header); nullptr when headroom is short.
  std::uint8_t* prepend(std::uint32_t n);
  /// Removes n bytes from the front; false when the frame is shorter.
  bool trim_front(std::uint32_t n);
  /// Sets the data length; false when it does not fit behind the headroom.
  bool resize(std::uint32_t n);
  /// Replaces the data with a copy of bytes; false when it does not fit.
  bool assign(std::span<const std::uint8_t> bytes);

  /// Fills in a checksum left to the receiver (kFrameCsumPartial: the
  /// Internet checksum from csum_start to the end, stored at csum_start +
  /// csum_offset, over the pseudo-header sum already there) and clears the
  /// flag, as skb_checksum_help() does. Nothing for other frames.
  void complete_checksum();

  FramePool& pool() const { return *pool_; }
  /// Returns the frame to its pool. The frame must not be used afterwards.
  void release();

  FrameMeta meta;
};

struct FramePoolConfig {
  /// Number of frames; all are allocated up front.
  std::uint32_t frames = 32768;
  /// Bytes per buffer, headroom included.
  std::uint32_t buffer_size = 2048;
  /// Bytes kept free in front of the data of a fresh frame for headers.
  std::uint32_t headroom = 128;
};

/// A fixed set of frames. Any thread may allocate and free, concurrently.
/// Each thread works on a small cache of free frames of its own, a stack, as
/// DPDK's mempool caches are: a burst freed is the next burst allocated,
/// its headers and buffers still in this CPU's cache, where a pool-wide FIFO
/// would go round every frame of the pool (64 MiB by default) and miss on
/// each. Caches fill from and spill into a shared multi-producer
/// multi-consumer ring, a burst at a time; an allocation that finds both
/// short takes frames from other threads' caches, so the pool runs dry only
/// when every frame is lent. The pool must outlive every frame it lent.
class FramePool {
 public:
  /// Throws std::invalid_argument for a zero count or a headroom that leaves
  /// no room for a minimum Ethernet frame, std::bad_alloc when out of memory.
  explicit FramePool(const FramePoolConfig& config = {});
  ~FramePool();
  FramePool(const FramePool&) = delete;
  FramePool& operator=(const FramePool&) = delete;

  /// A reset frame (empty data, default headroom, zeroed metadata), or
  /// nullptr when the pool is exhausted (counted in alloc_failures()).
  Frame* alloc();
  /// Allocates up to n frames into out; returns how many were allocated.
  std::uint32_t alloc_bulk(Frame** out, std::uint32_t n);
  void free(Frame* frame);
  void free_bulk(Frame* const* frames, std::uint32_t n);

  const FramePoolConfig& config() const { return config_; }
  /// Frames currently in the pool, cached ones included (a snapshot while
  /// others allocate).
  std::uint32_t available() const;
  std::uint64_t alloc_failures() const { return alloc_failures_.load(std::memory_order_relaxed); }

 private:
  static constexpr std::uint32_t kCacheSlots = 16;
  static constexpr std::uint32_t kCacheSize = 256;

  // A thread's cache, by slot: threads beyond kCacheSlots share slots, so
  // each is taken with a spin lock that is free unless two threads of a
  // slot meet. A thread holds at most one slot at a time.
  struct alignas(kCacheLine) Cache {
    std::atomic<bool> busy{false};
    std::atomic<std::uint32_t> count{0};  // written under busy, read by available()
    Frame* frames[kCacheSize];            // a stack: frames[count - 1] was freed last
  };
  class SlotLock;

  void reset(Frame* frame) const;
  std::uint32_t take(Frame** out, std::uint32_t n);
  std::uint32_t steal(Frame** out, std::uint32_t n, std::uint32_t own);
  static std::uint32_t pop(Cache& cache, Frame** out, std::uint32_t n);
  void put(Frame* const* frames, std::uint32_t n);
  void give_back(Frame* const* frames, std::uint32_t n);

  const FramePoolConfig config_;
  std::unique_ptr<Frame[]> frames_;
  std::unique_ptr<std::uint8_t[]> buffers_;
  MpmcRing<Frame*> free_;
  std::unique_ptr<Cache[]> caches_;
  std::atomic<std::uint64_t> alloc_failures_{0};
};

inline void Frame::release() { pool_->free(this); }

}  // namespace epair
