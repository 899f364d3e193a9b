// memif zero-copy: two memif client ends of one epair share a relay
// region, announced to both servers as region 1, and a frame one server
// sends crosses to the other as descriptors on its ring, uncopied, while
// the cable is open for it; copied through the engine otherwise. The relay
// buffers belong to a RelayPool (memif_relay.hpp), which each end gives to
// its server and takes back as they come home.
#include <algorithm>
#include <cstring>

#include "epair/cut_through.hpp"
#include "epair/ethernet.hpp"
#include "memif_endpoint.hpp"

namespace epair::memif {

namespace {

// A RelayHop's length once its buffer has crossed to the other end.
constexpr std::uint32_t kRelayed = 0xffffffff;
// In Session::tx_relayed: the buffer holds the start of a frame.
constexpr std::uint32_t kFirstHop = 0x80000000;

}  // namespace

std::optional<std::uint32_t> Endpoint::relay_buffers_free() const {
  if (!relay_pool_) return std::nullopt;
  return relay_pool_->free_count(relay_direction_);
}

std::optional<std::uint32_t> Endpoint::relay_buffers() const {
  if (!relay_pool_) return std::nullopt;
  return relay_pool_->per_direction();
}

// The other end, when frames may cross to it as descriptors: a memif end
// of the same pool whose session took region 1.
std::shared_ptr<Endpoint> Endpoint::relay_target() {
  auto target = std::dynamic_pointer_cast<Endpoint>(CutThrough(*ifp_).peer_endpoint());
  if (!target || target->relay_pool_ != relay_pool_ || !target->relaying()) return nullptr;
  return target;
}

// Free relay buffers onto the S2C ring, up to a whole ring given. The
// pool holds a ring's worth for this ring and as many for the other end's,
// so a whole ring is always there: the server never sees a ring partly
// given, and receive() never reads a slot past those given.
void Endpoint::give_relay_buffers(Session& s) {
  RelayPool& pool = *relay_pool_;
  Ring& ring = s.rx[0];
  const std::uint32_t mask = ring.size - 1;
  const auto until = static_cast<std::uint16_t>(ring.cursor + ring.size);
  const auto descriptor = [&](std::uint32_t buffer) {
    return Descriptor{0, 1, pool.buffer_size(), pool.offset(buffer), 0};
  };
  std::uint32_t taken[64];
  while (s.rx_given != until) {
    const std::uint32_t want = std::min<std::uint32_t>(static_cast<std::uint16_t>(until - s.rx_given), 64);
    const std::uint32_t got = pool.take(relay_direction_, {taken, want});
    for (std::uint32_t i = 0; i < got; ++i) {
      const std::uint32_t slot = s.rx_given & mask;
      s.rx_buffers[slot] = taken[i];
      write_descriptor(descriptor_at(ring.base, slot), descriptor(taken[i]));
      ++s.rx_given;
    }
    if (got < want) break;
  }
  // release: publishes the descriptors to the server's acquire of head.
  ring_index(ring.base, kRingHeadOffset).store(s.rx_given, std::memory_order_release);
}

// Relay buffers in C2S slots the server's tail has passed go back to the
// pool. A tail outside the slots in flight is left for transmittable()'s
// callers to report.
void Endpoint::reclaim_relayed(Session& s) {
  Ring& ring = s.tx[0];
  const std::uint16_t done = ring_index(ring.base, kRingTailOffset).load(std::memory_order_acquire);
  if (static_cast<std::uint16_t>(done - s.tx_reclaimed) > static_cast<std::uint16_t>(ring.cursor - s.tx_reclaimed)) {
    return;
  }
  return_relayed(s, done);
}

// Gives back the relay buffers of C2S slots from tx_reclaimed to `until`,
// counting the frames that start in them with a group destination address
// (omcasts, imcasts). Counted here rather than as they cross: the program
// that received them has just read these lines, on this CPU when epaird
// shares it, where reading them at the crossing waits on the sender's.
void Endpoint::return_relayed(Session& s, std::uint16_t until) {
  const std::uint32_t mask = s.tx[0].size - 1;
  const std::uint8_t* base = s.regions.maps[1].base();
  std::uint32_t back[64];
  std::uint32_t n = 0;
  std::uint64_t mcasts = 0;
  for (; s.tx_reclaimed != until; ++s.tx_reclaimed) {
    std::uint32_t& entry = s.tx_relayed[s.tx_reclaimed & mask];
    if (entry == 0) continue;
    const std::uint32_t buffer = (entry & ~kFirstHop) - 1;
    if ((entry & kFirstHop) != 0) mcasts += base[relay_pool_->offset(buffer)] & 0x01;
    back[n++] = buffer;
    entry = 0;
    if (n == 64) {
      relay_pool_->put(1 - relay_direction_, {back, n});
      n = 0;
    }
  }
  if (n != 0) relay_pool_->put(1 - relay_direction_, {back, n});
  if (mcasts != 0) CutThrough(*ifp_).count_group_addressed(mcasts);
}

// A session that ends gives back every relay buffer it holds: those given
// to its server and not read, and those on its C2S ring.
void Endpoint::release_relay_buffers(Session& s) {
  if (s.rx.empty() || s.tx.empty()) return;
  std::vector<std::uint32_t> back;
  const std::uint32_t mask = s.rx[0].size - 1;
  for (std::uint16_t slot = s.rx[0].cursor; slot != s.rx_given; ++slot) back.push_back(s.rx_buffers[slot & mask]);
  relay_pool_->put(relay_direction_, back);
  return_relayed(s, s.tx[0].cursor);
}

bool Endpoint::relay_in(std::span<const RelayHop> hops, std::span<RelayFrame> frames, bool hold) {
  const auto crossing = static_cast<std::uint64_t>(
      std::count_if(frames.begin(), frames.end(), [](const RelayFrame& f) { return f.kind == RelayFrame::kCross; }));
  std::lock_guard lock(tx_mutex_);
  if (!session_ || !connected() || !session_->relay) {
    counters_.add(&Counters::not_connected, crossing);
    return false;
  }
  Session& s = *session_;
  Ring& ring = s.tx[0];
  // As in transmit(): reclaimed after the count.
  std::uint32_t free_slots = transmittable(ring, false);
  reclaim_relayed(s);
  if (free_slots > ring.size) {
    tx_problem_ = broken_transmit_ring(ring, free_slots);
    signal(wake_.get());
    counters_.add(&Counters::not_connected, crossing);
    return false;
  }
  const std::uint32_t mask = ring.size - 1;
  const RelayPool& pool = *relay_pool_;
  std::uint16_t slot = ring.cursor;
  std::uint64_t placed = 0;
  for (RelayFrame& frame : frames) {
    if (frame.kind != RelayFrame::kCross) continue;
    if (frame.hops > free_slots) {
      if (hold) break;
      continue;
    }
    for (std::uint32_t i = 0; i < frame.hops; ++i) {
      const RelayHop& hop = hops[frame.first_hop + i];
      const std::uint16_t flags = i + 1 < frame.hops ? kDescriptorNext : 0;
      write_descriptor(descriptor_at(ring.base, slot & mask), {flags, 1, hop.length, pool.offset(hop.buffer), 0});
      s.tx_relayed[slot & mask] = (hop.buffer + 1) | (i == 0 ? kFirstHop : 0);
      ++slot;
    }
    free_slots -= frame.hops;
    frame.placed = true;
    ++placed;
  }
  if (slot != ring.cursor) publish(ring, false, slot);
  counters_.add(&Counters::sent, placed);
  if (!hold && placed != crossing) counters_.add(&Counters::ring_full, crossing - placed);
  return true;
}

// What one burst off a relayed receive ring came to. frames[i]'s hops are
// Session::hops from first_hop on, and its slots the ring's cursor +
// first_hop on.
struct Endpoint::RelayBurst {
  RelayFrame frames[kBurst];
  std::uint32_t taken = 0;     // frames read off the ring
  std::uint32_t consumed = 0;  // of those, taken off it for good
  std::uint64_t bad = 0;
  std::uint64_t received = 0;
};

// receive() for a session with relay buffers on its S2C ring: each buffer
// is where this end put it (rx_buffers), whatever the server wrote in the
// descriptor but its length and flags. Each burst, in this order:
// 1. is gathered whole first, so that a chain that runs past the
//    descriptors given leaves nothing half done;
// 2. crosses to the other end as descriptors while the cable is open for
//    it (CutThrough::open), or is copied into frames for the engine;
// 3. gives back the buffers that did not cross, and the ring as many again.
bool Endpoint::receive_relayed(Ring& ring, std::uint32_t available, std::size_t& budget) {
  const std::shared_ptr<Endpoint> target = relay_target();
  bool took = false;
  while (available > 0) {
    const std::uint32_t want = next_burst(available, budget);
    if (want == 0) break;
    RelayBurst burst;
    if (!gather_relayed(ring, want, available, burst)) return false;
    if (target && CutThrough(*ifp_).open()) {
      cross_relayed(*target, burst);
    } else {
      copy_relayed(burst);
    }
    if (burst.bad != 0) counters_.add(&Counters::bad_descriptor, burst.bad);
    if (burst.received != 0) counters_.add(&Counters::received, burst.received);
    return_relay_buffers(ring, burst);
    budget -= std::min<std::size_t>(budget, burst.consumed);
    took = took || burst.consumed != 0;
    if (burst.consumed < burst.taken) break;
  }
  return took;
}

// Step 1: up to want frames off the ring, their chains followed; false
// when a chain runs past the descriptors given (the peer is disconnected).
bool Endpoint::gather_relayed(Ring& ring, std::uint32_t want, std::uint32_t& available, RelayBurst& burst) {
  Session& s = *session_;
  const RelayPool& pool = *relay_pool_;
  const std::uint32_t mask = ring.size - 1;
  std::uint16_t at = ring.cursor;
  s.hops.clear();
  for (; burst.taken < want && available > 0; ++burst.taken) {
    RelayFrame frame{static_cast<std::uint32_t>(s.hops.size()), 0, 0, RelayFrame::kCross, false};
    bool fits = true;
    for (;;) {
      const std::uint32_t slot = (at + frame.hops) & mask;
      const Descriptor d = read_descriptor(descriptor_at(ring.base, slot));
      ++frame.hops;
      fits = fits && d.length <= pool.buffer_size();
      s.hops.push_back({s.rx_buffers[slot], fits ? d.length : 0});
      frame.bytes += fits ? d.length : 0;
      if ((d.flags & kDescriptorNext) == 0) break;
      if (frame.hops == available) {
        disconnect("a chain on receive ring " + std::to_string(ring.index) + " runs past the descriptors given", true);
        return false;
      }
    }
    at = static_cast<std::uint16_t>(at + frame.hops);
    available -= frame.hops;
    if (!fits) {
      frame.kind = RelayFrame::kBad;
    } else if (frame.bytes == 0) {
      frame.kind = RelayFrame::kEmpty;
    }
    burst.frames[burst.taken] = frame;
  }
  burst.consumed = burst.taken;
  return true;
}

// Step 2, across: the frames go onto target's C2S ring as descriptors,
// counted as transmit() and the delivery would count them.
void Endpoint::cross_relayed(Endpoint& target, RelayBurst& burst) {
  Session& s = *session_;
  RelayFrame* frames = burst.frames;
  const std::uint32_t largest = ifp_->mtu() + Interface::kFrameOverhead;
  // What transmit() would refuse is counted as it would count it.
  for (std::uint32_t i = 0; i < burst.taken; ++i) {
    if (frames[i].kind == RelayFrame::kCross &&
        (frames[i].bytes < ethernet::kHeaderSize || frames[i].bytes > largest)) {
      frames[i].kind = RelayFrame::kWrongSize;
    }
  }
  // flow-control: a frame that finds the other ring full stays on this
  // one, with those after it, as the copying path holds back.
  if (target.relay_in(s.hops, {frames, burst.taken}, config_.flow_control) && config_.flow_control) {
    for (std::uint32_t i = 0; i < burst.taken; ++i) {
      if (frames[i].kind == RelayFrame::kCross && !frames[i].placed) {
        burst.consumed = i;
        held_back_ = true;
        counters_.add(&Counters::held_back);
        break;
      }
    }
  }
  std::uint64_t placed = 0, bytes = 0, wrong_size = 0;
  for (std::uint32_t i = 0; i < burst.consumed; ++i) {
    const RelayFrame& f = frames[i];
    burst.bad += f.kind == RelayFrame::kBad;
    wrong_size += f.kind == RelayFrame::kWrongSize;
    burst.received += f.kind == RelayFrame::kCross || f.kind == RelayFrame::kWrongSize;
    if (!f.placed) continue;
    ++placed;
    bytes += f.bytes;
    // Its buffers are the other end's now.
    for (std::uint32_t h = 0; h < f.hops; ++h) s.hops[f.first_hop + h].length = kRelayed;
  }
  if (wrong_size != 0) ifp_->count_output_errors(wrong_size);
  counters_.add(&Counters::relayed, placed);
  CutThrough(*ifp_).count_crossed(placed, bytes);
}

// Step 2, copied: the frames go into frames of the pool and through the
// engine, as the copying path sends them.
void Endpoint::copy_relayed(RelayBurst& burst) {
  Session& s = *session_;
  const RelayPool& pool = *relay_pool_;
  const std::uint8_t* base = s.regions.maps[1].base();
  Frame* fresh_frames[kBurst];
  Frame* ready[kBurst];
  std::uint32_t copy[kBurst];
  std::uint32_t ncopy = 0;
  for (std::uint32_t i = 0; i < burst.taken; ++i) {
    burst.bad += burst.frames[i].kind == RelayFrame::kBad;
    if (burst.frames[i].kind == RelayFrame::kCross) copy[ncopy++] = i;
  }
  const std::uint32_t fresh = pool_.alloc_bulk(fresh_frames, ncopy);
  if (fresh < ncopy) counters_.add(&Counters::no_buffer, ncopy - fresh);
  std::uint32_t count = 0;
  for (std::uint32_t i = 0; i < fresh; ++i) {
    const RelayFrame& f = burst.frames[copy[i]];
    Frame* frame = fresh_frames[i];
    bool copied = true;
    for (std::uint32_t h = 0; h < f.hops && copied; ++h) {
      const RelayHop& hop = s.hops[f.first_hop + h];
      std::uint8_t* to = frame->append(hop.length);
      if (to != nullptr) std::memcpy(to, base + pool.offset(hop.buffer), hop.length);
      copied = to != nullptr;
    }
    if (copied) {
      ready[count++] = frame;
    } else {
      ++burst.bad;
      frame->release();
    }
  }
  burst.received = count;
  if (count != 0) (void)ifp_->transmit_burst({ready, count});
}

// Step 3: every buffer taken off the ring for good that did not cross goes
// back to the pool, and the ring is given as many again.
void Endpoint::return_relay_buffers(Ring& ring, const RelayBurst& burst) {
  Session& s = *session_;
  RelayPool& pool = *relay_pool_;
  const std::uint32_t hops_taken =
      burst.consumed < burst.taken ? burst.frames[burst.consumed].first_hop : static_cast<std::uint32_t>(s.hops.size());
  s.hops.resize(hops_taken);
  std::uint32_t back[kBurst];
  std::uint32_t nback = 0;
  for (const RelayHop& hop : s.hops) {
    if (hop.length == kRelayed) continue;
    back[nback++] = hop.buffer;
    if (nback == kBurst) {
      pool.put(relay_direction_, {back, nback});
      nback = 0;
    }
  }
  if (nback != 0) pool.put(relay_direction_, {back, nback});
  ring.cursor = static_cast<std::uint16_t>(ring.cursor + hops_taken);
  give_relay_buffers(s);
}

}  // namespace epair::memif
