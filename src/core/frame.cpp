#include "epair/frame.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <thread>

#include "cpu_relax.hpp"
#include "epair/ethernet.hpp"

namespace epair {

bool FrameMeta::add_tag(const FrameTag& tag) {
  if (tag_count == kMaxTags) return false;
  tags[tag_count++] = tag;
  return true;
}

void FrameMeta::delete_nonpersistent_tags() {
  std::uint8_t kept = 0;
  for (std::uint8_t i = 0; i < tag_count; ++i) {
    if (tags[i].persistent) tags[kept++] = tags[i];
  }
  for (std::uint8_t i = kept; i < tag_count; ++i) tags[i] = FrameTag{};
  tag_count = kept;
}

std::uint8_t* Frame::append(std::uint32_t n) {
  if (n > tailroom()) return nullptr;
  std::uint8_t* tail = data() + size_;
  size_ += n;
  return tail;
}

std::uint8_t* Frame::prepend(std::uint32_t n) {
  if (n > offset_) return nullptr;
  offset_ -= n;
  size_ += n;
  return data();
}

bool Frame::trim_front(std::uint32_t n) {
  if (n > size_) return false;
  offset_ += n;
  size_ -= n;
  return true;
}

bool Frame::resize(std::uint32_t n) {
  if (n > capacity_ - offset_) return false;
  size_ = n;
  return true;
}

bool Frame::assign(std::span<const std::uint8_t> bytes) {
  if (bytes.size() > capacity_ - offset_) return false;
  std::memcpy(data(), bytes.data(), bytes.size());
  size_ = static_cast<std::uint32_t>(bytes.size());
  return true;
}

std::uint32_t Frame::wire_size() const {
  if ((meta.flags & kFrameGso) == 0 || meta.gso_size == 0) return size_;
  // The headers end after the L4 header, which starts where the checksum
  // does; without that offset the frame is measured whole.
  const std::uint32_t l4 = meta.csum_start;
  if (l4 == 0 || l4 + 20 > size_) return size_;
  const std::uint8_t type = meta.gso_type & ~kGsoEcn;
  const std::uint32_t l4_header = (type == kGsoUdp || type == kGsoUdpL4) ? 8u : (data()[l4 + 12] >> 4) * 4u;
  return std::min(size_, l4 + l4_header + meta.gso_size);
}

WireCount Frame::gso_on_wire() const {
  // wire_size() is the whole frame when it has no gso_size or no headers
  // to repeat: then it is one frame.
  const std::uint32_t one = wire_size();
  if (one >= size_) return {1, size_};
  const std::uint32_t headers = one - meta.gso_size;
  const std::uint32_t segments = (size_ - headers + meta.gso_size - 1) / meta.gso_size;
  return {segments, size_ + std::uint64_t{segments - 1} * headers};
}

void Frame::complete_checksum() {
  if ((meta.flags & kFrameCsumPartial) == 0) return;
  meta.flags &= ~kFrameCsumPartial;
  const std::uint32_t start = meta.csum_start;
  const std::uint32_t field = start + meta.csum_offset;
  if (start >= size_ || field + 2 > size_) return;
  ethernet::store_be16(data() + field, ethernet::internet_checksum(bytes().subspan(start)));
}

namespace {
constexpr std::uint32_t kMinFrame = 64;

// Process-wide, so that a thread has the same slot in every pool.
std::uint32_t thread_slot(std::uint32_t slots) {
  static std::atomic<std::uint32_t> next{0};
  thread_local const std::uint32_t slot = next.fetch_add(1, std::memory_order_relaxed);
  return slot % slots;
}

[[noreturn]] void freed_twice(const Frame* frame) {
  std::fprintf(stderr, "epair: frame %p freed twice\n", static_cast<const void*>(frame));
  std::abort();
}

const FramePoolConfig& checked(const FramePoolConfig& config) {
  if (config.frames == 0) throw std::invalid_argument("frame pool needs at least one frame");
  if (config.buffer_size < config.headroom + kMinFrame)
    throw std::invalid_argument("frame pool buffer leaves no room for a frame after the headroom");
  return config;
}
}  // namespace

FramePool::FramePool(const FramePoolConfig& config)
    : config_(checked(config)),
      frames_(std::make_unique<Frame[]>(config.frames)),
      // Not zeroed: the pages of a buffer become resident when a frame first uses it.
      buffers_(
          std::make_unique_for_overwrite<std::uint8_t[]>(static_cast<std::size_t>(config.frames) * config.buffer_size)),
      free_(config.frames),
      caches_(std::make_unique<Cache[]>(kCacheSlots)) {
  // Buffers become resident on first use; with transparent huge pages the
  // first pass through the pool takes a fault per 2 MiB instead of one per
  // 4 KiB, which cost TCP through a fresh epaird a fifth of its rate.
  constexpr std::uintptr_t kHugePage = 2u << 20;
  const auto start = reinterpret_cast<std::uintptr_t>(buffers_.get());
  const std::uintptr_t end = start + static_cast<std::size_t>(config_.frames) * config_.buffer_size;
  const std::uintptr_t aligned = (start + kHugePage - 1) & ~(kHugePage - 1);
  if (end > aligned + kHugePage) {
    ::madvise(buffers_.get() + (aligned - start), (end - aligned) & ~(kHugePage - 1), MADV_HUGEPAGE);
  }
  for (std::uint32_t i = 0; i < config_.frames; ++i) {
    Frame& frame = frames_[i];
    frame.pool_ = this;
    frame.buffer_ = buffers_.get() + static_cast<std::size_t>(i) * config_.buffer_size;
    frame.capacity_ = config_.buffer_size;
    frame.in_pool_ = true;
    Frame* pointer = &frame;
    give_back(&pointer, 1);
  }
}

FramePool::~FramePool() = default;

class FramePool::SlotLock {
 public:
  explicit SlotLock(Cache& cache) : cache_(cache) {
    // acquire: pairs with the release in the destructor, so the frames the
    // last holder left in the slot are seen whole.
    for (unsigned attempt = 0; cache_.busy.exchange(true, std::memory_order_acquire); ++attempt) {
      if (attempt < 64) {
        cpu_relax();
      } else {
        std::this_thread::yield();
      }
    }
  }
  ~SlotLock() { cache_.busy.store(false, std::memory_order_release); }
  SlotLock(const SlotLock&) = delete;
  SlotLock& operator=(const SlotLock&) = delete;

 private:
  Cache& cache_;
};

std::uint32_t FramePool::available() const {
  std::uint32_t n = free_.size();
  for (std::uint32_t i = 0; i < kCacheSlots; ++i) n += caches_[i].count.load(std::memory_order_relaxed);
  return n;
}

void FramePool::reset(Frame* frame) const {
  frame->offset_ = config_.headroom;
  frame->size_ = 0;
  frame->in_pool_ = false;
  frame->meta.reset();
}

Frame* FramePool::alloc() {
  Frame* frame = nullptr;
  if (take(&frame, 1) == 0) {
    alloc_failures_.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  reset(frame);
  return frame;
}

std::uint32_t FramePool::alloc_bulk(Frame** out, std::uint32_t n) {
  const std::uint32_t got = take(out, n);
  if (got < n) alloc_failures_.fetch_add(n - got, std::memory_order_relaxed);
  for (std::uint32_t i = 0; i < got; ++i) reset(out[i]);
  return got;
}

std::uint32_t FramePool::take(Frame** out, std::uint32_t n) {
  const std::uint32_t own = thread_slot(kCacheSlots);
  Cache& cache = caches_[own];
  std::uint32_t got;
  {
    SlotLock lock(cache);
    const std::uint32_t count = cache.count.load(std::memory_order_relaxed);
    // Half a cache beyond the burst, so that the next bursts find frames
    // without going to the ring.
    if (count < n && n <= kCacheSize / 2) {
      const std::uint32_t refilled = free_.dequeue_burst(cache.frames + count, kCacheSize / 2 + n - count);
      cache.count.store(count + refilled, std::memory_order_relaxed);
    }
    got = pop(cache, out, n);
  }
  if (got < n) got += free_.dequeue_burst(out + got, n - got);
  if (got < n) got += steal(out + got, n - got, own);
  return got;
}

std::uint32_t FramePool::steal(Frame** out, std::uint32_t n, std::uint32_t own) {
  std::uint32_t got = 0;
  for (std::uint32_t i = 1; i < kCacheSlots && got < n; ++i) {
    Cache& cache = caches_[(own + i) % kCacheSlots];
    if (cache.count.load(std::memory_order_relaxed) == 0) continue;
    SlotLock lock(cache);
    got += pop(cache, out + got, n - got);
  }
  return got;
}

// The caller holds the cache's slot.
std::uint32_t FramePool::pop(Cache& cache, Frame** out, std::uint32_t n) {
  const std::uint32_t count = cache.count.load(std::memory_order_relaxed);
  const std::uint32_t taken = std::min(n, count);
  std::copy_n(cache.frames + count - taken, taken, out);
  cache.count.store(count - taken, std::memory_order_relaxed);
  return taken;
}

void FramePool::put(Frame* const* frames, std::uint32_t n) {
  for (std::uint32_t i = 0; i < n; ++i) {
    if (frames[i]->in_pool_) freed_twice(frames[i]);
    frames[i]->in_pool_ = true;
  }
  if (n > kCacheSize / 2) {
    give_back(frames, n);
    return;
  }
  Cache& cache = caches_[thread_slot(kCacheSlots)];
  SlotLock lock(cache);
  std::uint32_t count = cache.count.load(std::memory_order_relaxed);
  // A full cache goes to the ring whole, as DPDK's does: the frames freed
  // now are the ones to keep close.
  if (count + n > kCacheSize) {
    give_back(cache.frames, count);
    count = 0;
  }
  std::copy_n(frames, n, cache.frames + count);
  cache.count.store(count + n, std::memory_order_relaxed);
}

// The free ring holds every frame, so it always has room in the end; a slot
// can only look taken while a concurrent alloc is still copying out of it.
void FramePool::give_back(Frame* const* frames, std::uint32_t n) {
  for (unsigned stalled = 0; n != 0;) {
    const std::uint32_t done = free_.enqueue_burst(frames, n);
    frames += done;
    n -= done;
    if (done != 0) {
      stalled = 0;
      continue;
    }
    // A slot looks taken while a concurrent alloc copies out of it; that
    // passes in a moment. A ring that stays full is holding every frame the
    // pool owns: this one was freed twice, and going on would hand one buffer
    // to two owners.
    if (++stalled % 64 == 0) std::this_thread::yield();
    if (stalled >= 100000 && free_.size() >= config_.frames) freed_twice(frames[0]);
  }
}

void FramePool::free(Frame* frame) { put(&frame, 1); }

void FramePool::free_bulk(Frame* const* frames, std::uint32_t n) {
  // Frames of one burst may come from several pools (an endpoint can transmit
  // frames of its own pool); give each run back to the pool it belongs to.
  std::uint32_t start = 0;
  while (start < n) {
    FramePool* owner = frames[start]->pool_;
    std::uint32_t end = start + 1;
    while (end < n && frames[end]->pool_ == owner) ++end;
    if (owner == this) {
      put(frames + start, end - start);
    } else {
      owner->free_bulk(frames + start, end - start);
    }
    start = end;
  }
}

}  // namespace epair
