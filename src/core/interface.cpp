// The transmit path first (SPEC.md "Transmit"), then delivery on the worker,
// then the control path.
#include "epair/interface.hpp"

#include <algorithm>
#include <cstdio>
#include <random>

#include "cpu_relax.hpp"
#include "dispatcher.hpp"
#include "epair/ethernet.hpp"
#include "epair/flow_hash.hpp"
#include "impairment_line.hpp"
#include "pair.hpp"
#include "receive_queue.hpp"

namespace epair {

namespace {

constexpr std::uint8_t kGroupBit = 0x01;

// Broadcast/multicast from the destination address, as ether_output does.
std::uint32_t destination_class(const Frame& frame) {
  const std::uint8_t* dst = frame.data();
  if ((dst[0] & kGroupBit) == 0) return 0;
  const bool broadcast = (dst[0] & dst[1] & dst[2] & dst[3] & dst[4] & dst[5]) == 0xff;
  return broadcast ? kFrameBroadcast : kFrameMulticast;
}

constexpr std::uint32_t kMinEthernetHeader = ethernet::kHeaderSize;
// Step 4: what the peer must be for a frame to cross.
constexpr std::uint32_t kPeerReady = kFlagUp | kFlagRunning;

}  // namespace

// Steps 1 and 2: checks on the sending side, each an oerror.
std::error_code Interface::check_transmit(std::uint32_t frame_size, std::uint32_t flags) const {
  if (frame_size > mtu_.load(std::memory_order_relaxed) + kFrameOverhead) {
    return std::make_error_code(std::errc::argument_list_too_long);
  }
  if ((flags & kFlagRunning) == 0) return std::make_error_code(std::errc::no_such_device_or_address);
  if ((flags & kFlagUp) == 0) return std::make_error_code(std::errc::network_down);
  return {};
}

// Step 5: what belongs to the sender only never crosses the cable.
void Interface::scrub_for_peer(Frame& frame, Interface& peer) const {
  FrameMeta& meta = frame.meta;
  if ((meta.flags & kFrameSendTag) != 0) meta.send_tag = 0;
  meta.flags &= ~(kFrameSendTag | kFrameBroadcast | kFrameMulticast);
  // A VLAN tag in metadata is a real tag only when the sender does hardware
  // tagging; otherwise it is stale (the double tagging of PR 270736).
  if ((capenable_.load(std::memory_order_relaxed) & kCapVlanHwTagging) == 0) {
    meta.flags &= ~kFrameVlanTag;
    meta.vlan_tci = 0;
  }
  if (meta.tag_count != 0) meta.delete_nonpersistent_tags();
  meta.rcvif = &peer;
}

ReceiveQueue& Interface::queue_for(const Frame& frame) {
  if (queues_.size() == 1) return *queues_[0];
  std::uint32_t hash;
  if ((frame.meta.flags & kFrameFlowHash) != 0) {
    hash = frame.meta.flow_hash;
  } else if (auto computed = flow_hash(frame.bytes())) {
    hash = *computed;
  } else {
    return *queues_[0];
  }
  return *queues_[hash % queues_.size()];
}

// Step 6: tail drop when full. Returns false when the frame was dropped.
bool Interface::enqueue_on_peer(Interface& peer, Frame* frame) {
  ReceiveQueue& q = peer.queue_for(*frame);
  if (q.ring_.enqueue_burst(&frame, 1) == 0) return false;
  pair_.dispatcher->wake(q, pair_);
  return true;
}

std::error_code Interface::transmit(Frame* frame) {
  const std::uint32_t size = frame->size();
  if (size < kMinEthernetHeader) {
    add_to(counters_->tx.oerrors, 1);
    frame->release();
    return std::make_error_code(std::errc::invalid_argument);
  }
  if (std::error_code error = check_transmit(frame->wire_size(), flags_.load(std::memory_order_acquire))) {
    add_to(counters_->tx.oerrors, 1);
    frame->release();
    return error;
  }
  if (auto taps = current_taps()) show_to_taps(*taps, {&frame, 1}, TapDirection::kOut);
  if (impaired_.load(std::memory_order_relaxed)) {
    if (auto line = current_line()) {
      line->admit({&frame, 1});
      return {};
    }
  }

  Interface& peer = *peer_;
  if ((peer.flags_.load(std::memory_order_acquire) & kPeerReady) != kPeerReady) {
    add_to(counters_->tx.oerrors, 1);
    frame->release();
    return {};
  }
  const std::uint32_t mcast = destination_class(*frame);
  scrub_for_peer(*frame, peer);
  frame->meta.flags |= mcast;
  const WireCount wire = frame->on_wire();
  // Once queued the frame is the peer's: nothing of it is read afterwards.
  if (!enqueue_on_peer(peer, frame)) {
    add_to(counters_->tx.oqdrops, 1);
    frame->release();
    return {};
  }
  // Step 7, a GSO frame counted as the frames it stands for.
  add_to(counters_->tx.opackets, wire.frames);
  add_to(counters_->tx.obytes, wire.bytes);
  if (mcast != 0) add_to(counters_->tx.omcasts, wire.frames);
  add_to(peer.counters_->enqueued.ipackets, wire.frames);
  return {};
}

std::size_t Interface::transmit_burst(std::span<Frame* const> frames) {
  // The same steps as transmit(), with flags read once, counters added once
  // per burst, and frames for one queue enqueued together.
  constexpr std::uint32_t kChunk = 64;
  std::size_t accepted = 0;
  std::uint64_t oerrors = 0;
  const std::uint32_t flags = flags_.load(std::memory_order_acquire);
  const std::shared_ptr<const TapList> taps = current_taps();
  const std::shared_ptr<ImpairmentLine> line = current_line();

  Frame* passed[kChunk];
  std::size_t next = 0;
  while (next < frames.size()) {
    std::uint32_t npassed = 0;
    for (; next < frames.size() && npassed < kChunk; ++next) {
      Frame* frame = frames[next];
      std::error_code error = frame->size() < kMinEthernetHeader ? std::make_error_code(std::errc::invalid_argument)
                                                                 : check_transmit(frame->wire_size(), flags);
      if (error) {
        ++oerrors;
        frame->release();
        continue;
      }
      passed[npassed++] = frame;
    }
    if (npassed == 0) continue;
    if (taps) show_to_taps(*taps, {passed, npassed}, TapDirection::kOut);
    accepted += npassed;
    if (line) {
      line->admit({passed, npassed});
    } else {
      cross_to_peer({passed, npassed});
    }
  }
  if (oerrors != 0) add_to(counters_->tx.oerrors, oerrors);
  return accepted;
}

void Interface::cross_to_peer(std::span<Frame* const> frames) {
  constexpr std::uint32_t kChunk = 64;
  std::uint64_t opackets = 0, obytes = 0, omcasts = 0, oqdrops = 0;
  Interface& peer = *peer_;
  // Step 4, once for all.
  if ((peer.flags_.load(std::memory_order_acquire) & kPeerReady) != kPeerReady) {
    add_to(counters_->tx.oerrors, frames.size());
    for (Frame* frame : frames) frame->release();
    return;
  }
  Frame* ready[kChunk];
  WireCount wire[kChunk];
  std::uint32_t classes[kChunk];
  for (std::size_t next = 0; next < frames.size();) {
    const auto count = static_cast<std::uint32_t>(std::min<std::size_t>(kChunk, frames.size() - next));
    for (std::uint32_t i = 0; i < count; ++i) {
      Frame* frame = frames[next + i];
      classes[i] = destination_class(*frame);
      scrub_for_peer(*frame, peer);
      frame->meta.flags |= classes[i];
      wire[i] = frame->on_wire();
      ready[i] = frame;
    }
    next += count;
    if (peer.queues_.size() == 1) {
      ReceiveQueue& q = *peer.queues_[0];
      const std::uint32_t queued = q.ring_.enqueue_burst(ready, count);
      if (queued != 0) pair_.dispatcher->wake(q, pair_);
      for (std::uint32_t i = queued; i < count; ++i) {
        ++oqdrops;
        ready[i]->release();
      }
      for (std::uint32_t i = 0; i < queued; ++i) {
        opackets += wire[i].frames;
        obytes += wire[i].bytes;
        omcasts += classes[i] != 0 ? wire[i].frames : 0;
      }
    } else {
      for (std::uint32_t i = 0; i < count; ++i) {
        if (enqueue_on_peer(peer, ready[i])) {
          opackets += wire[i].frames;
          obytes += wire[i].bytes;
          omcasts += classes[i] != 0 ? wire[i].frames : 0;
        } else {
          ++oqdrops;
          ready[i]->release();
        }
      }
    }
  }
  if (oqdrops != 0) add_to(counters_->tx.oqdrops, oqdrops);
  if (opackets != 0) {
    add_to(counters_->tx.opackets, opackets);
    add_to(counters_->tx.obytes, obytes);
    if (omcasts != 0) add_to(counters_->tx.omcasts, omcasts);
    add_to(peer.counters_->enqueued.ipackets, opackets);
  }
}

bool Interface::cut_through_open() const {
  if (tap_count_.load(std::memory_order_relaxed) != 0 || impaired_.load(std::memory_order_relaxed)) return false;
  const Interface& peer = *peer_;
  if (peer.tap_count_.load(std::memory_order_relaxed) != 0) return false;
  if ((flags_.load(std::memory_order_acquire) & kPeerReady) != kPeerReady) return false;
  if ((peer.flags_.load(std::memory_order_acquire) & kPeerReady) != kPeerReady) return false;
  for (const auto& q : peer.queues_) {
    if (!q->ring_.empty()) return false;
  }
  return true;
}

void Interface::count_cut_through(std::uint64_t frames, std::uint64_t bytes) {
  if (frames == 0) return;
  Interface& peer = *peer_;
  add_to(counters_->tx.opackets, frames);
  add_to(counters_->tx.obytes, bytes);
  add_to(peer.counters_->enqueued.ipackets, frames);
  add_to(peer.counters_->rx.ibytes, bytes);
}

void Interface::count_cut_through_mcasts(std::uint64_t frames) {
  add_to(counters_->rx.imcasts, frames);
  add_to(peer_->counters_->tx.omcasts, frames);
}

// Step 8, on the worker: what ether_input would count, then the stack.
void Interface::input_burst(std::span<Frame* const> burst, Endpoint* endpoint) {
  std::uint64_t bytes = 0, mcasts = 0;
  const std::shared_ptr<const TapList> taps = current_taps();
  if (taps && !burst.empty()) show_to_taps(*taps, burst, TapDirection::kIn);
  for (Frame* frame : burst) {
    const WireCount wire = frame->on_wire();
    bytes += wire.bytes;
    if ((frame->meta.flags & (kFrameBroadcast | kFrameMulticast)) != 0) mcasts += wire.frames;
  }
  add_to(counters_->rx.ibytes, bytes);
  if (mcasts != 0) add_to(counters_->rx.imcasts, mcasts);
  if (endpoint != nullptr) {
    endpoint->input(*this, burst);
    return;
  }
  add_to(counters_->rx.iqdrops, burst.size());
  if (!burst.empty()) burst[0]->pool().free_bulk(burst.data(), static_cast<std::uint32_t>(burst.size()));
}

std::shared_ptr<const Interface::TapList> Interface::current_taps() const {
  // The count keeps the common case (no tap) to one relaxed load.
  if (tap_count_.load(std::memory_order_relaxed) == 0) return nullptr;
  while (tap_list_lock_.test_and_set(std::memory_order_acquire)) cpu_relax();
  std::shared_ptr<const TapList> taps = tap_list_;
  tap_list_lock_.clear(std::memory_order_release);
  return taps;
}

std::shared_ptr<ImpairmentLine> Interface::current_line() const {
  if (!impaired_.load(std::memory_order_relaxed)) return nullptr;
  while (line_lock_.test_and_set(std::memory_order_acquire)) cpu_relax();
  std::shared_ptr<ImpairmentLine> line = line_;
  line_lock_.clear(std::memory_order_release);
  return line;
}

void Interface::publish_line(std::shared_ptr<ImpairmentLine> line) {
  impaired_.store(line != nullptr, std::memory_order_relaxed);
  while (line_lock_.test_and_set(std::memory_order_acquire)) cpu_relax();
  std::swap(line_, line);
  line_lock_.clear(std::memory_order_release);
  // The old line, if any, closes here or with the last transmitter that
  // still holds it: its frames are freed, not sent.
  if (line) line->close();
}

void Interface::show_to_taps(const TapList& taps, std::span<Frame* const> frames, TapDirection direction) const {
  for (const auto& tap : taps) (*tap)(*this, frames, direction);
}

// --- control path ---

Status Interface::set_impairment(const ImpairmentConfig& config) {
  if (pair_.destroyed.load(std::memory_order_acquire)) return no_such_interface(name());
  if (config.limit == 0 || config.limit > kMaxImpairmentLimit) {
    return {EINVAL, name() + ": impair: limit must be from 1 to " + std::to_string(kMaxImpairmentLimit) + " frames"};
  }
  const std::uint64_t seed = (std::uint64_t{std::random_device{}()} << 32) | std::random_device{}();
  {
    std::lock_guard lock(mutex_);
    if (auto line = current_line()) {
      line->reconfigure(config, seed);
    } else {
      publish_line(std::make_shared<ImpairmentLine>(*this, pair_.weak_from_this(), *pair_.clock, config, seed));
    }
  }
  // A destroy that raced past the check above may have closed the old line
  // before this one was published: close it too.
  if (pair_.destroyed.load(std::memory_order_acquire)) clear_impairment();
  notify(InterfaceEvent::kImpairment);
  return {};
}

void Interface::clear_impairment() {
  bool had;
  {
    std::lock_guard lock(mutex_);
    had = impaired_.load(std::memory_order_relaxed);
    publish_line(nullptr);
  }
  if (had && !pair_.destroyed.load(std::memory_order_acquire)) notify(InterfaceEvent::kImpairment);
}

std::optional<ImpairmentConfig> Interface::impairment() const {
  if (auto line = current_line()) return line->config();
  return std::nullopt;
}

ImpairmentCounters Interface::impairment_counters() const {
  if (auto line = current_line()) return line->counters();
  return {};
}

Interface::Interface(Pair& pair, char side, std::string name, int unit, std::size_t queues, std::uint32_t queue_depth,
                     std::shared_ptr<CounterBlock> counters)
    : pair_(pair),
      side_(side),
      name_(std::move(name)),
      unit_(unit),
      flags_(kFlagBroadcast | kFlagSimplex | kFlagMulticast | kFlagKnowsEpoch),
      counters_(counters ? std::move(counters) : std::make_shared<CounterBlock>()) {
  queues_.reserve(queues);
  for (std::size_t i = 0; i < queues; ++i) {
    queues_.push_back(std::make_unique<ReceiveQueue>(*this, queue_depth, pair.dispatcher->assign_worker()));
  }
}

Interface::~Interface() = default;

std::uint32_t Interface::index() const {
  std::lock_guard lock(mutex_);
  return index_;
}

std::string Interface::name() const {
  std::lock_guard lock(name_mutex_);
  return name_;
}

std::string Interface::vnet_name() const {
  std::lock_guard lock(mutex_);
  return vnet_name_;
}

std::string Interface::home_vnet_name() const {
  std::lock_guard lock(mutex_);
  return home_vnet_name_;
}

std::shared_ptr<Interface> Interface::peer() const {
  if (pair_.destroyed.load(std::memory_order_acquire)) return nullptr;
  return pair_.handle(*peer_);
}

std::uint32_t Interface::flags() const { return flags_.load(std::memory_order_acquire); }

LinkState Interface::link_state() const {
  std::lock_guard lock(mutex_);
  return link_state_;
}

std::string_view Interface::media_status() const { return link_state() == LinkState::kUp ? "active" : "no carrier"; }

Status Interface::set_flags(std::uint32_t requested) {
  std::uint32_t old_flags = flags_.load(std::memory_order_relaxed);
  std::uint32_t new_flags;
  do {
    if ((old_flags & kFlagRunning) == 0 && pair_.destroyed.load(std::memory_order_acquire)) {
      return no_such_interface(name());
    }
    new_flags = (old_flags & ~kUserFlags) | (requested & kUserFlags);
  } while (!flags_.compare_exchange_weak(old_flags, new_flags, std::memory_order_acq_rel));
  if (new_flags == old_flags) return {};
  notify(InterfaceEvent::kFlags);
  if (((new_flags ^ old_flags) & kFlagUp) != 0 && peer_->update_carrier()) peer_->notify(InterfaceEvent::kLinkState);
  return {};
}

Status Interface::set_up(bool up) {
  const std::uint32_t current = flags();
  return set_flags(up ? (current | kFlagUp) : (current & ~kFlagUp));
}

std::uint32_t Interface::mtu() const { return mtu_.load(std::memory_order_relaxed); }

Status Interface::set_mtu(std::uint32_t mtu) {
  if (pair_.destroyed.load(std::memory_order_acquire)) return no_such_interface(name());
  if (mtu < kMinMtu || mtu > kMaxMtu) return {EINVAL, name() + ": SIOCSIFMTU: Invalid argument"};
  if (mtu_.exchange(mtu, std::memory_order_relaxed) != mtu) notify(InterfaceEvent::kMtu);
  return {};
}

MacAddress Interface::mac() const {
  std::lock_guard lock(mutex_);
  return mac_;
}

Status Interface::set_mac(const MacAddress& mac) {
  if (pair_.destroyed.load(std::memory_order_acquire)) return no_such_interface(name());
  if (mac.is_multicast() || mac.is_zero()) return {EINVAL, name() + ": SIOCSIFLLADDR: Invalid argument"};
  {
    std::lock_guard lock(mutex_);
    if (mac_ == mac) return {};
    mac_ = mac;
  }
  notify(InterfaceEvent::kAddress);
  return {};
}

std::uint32_t Interface::enabled_capabilities() const { return capenable_.load(std::memory_order_relaxed); }

Status Interface::set_enabled_capabilities(std::uint32_t caps) {
  if (pair_.destroyed.load(std::memory_order_acquire)) return no_such_interface(name());
  if ((caps & ~kSupportedCapabilities) != 0) return {EINVAL, name() + ": SIOCSIFCAP: Invalid argument"};
  caps |= kFixedCapabilities;
  if (capenable_.exchange(caps, std::memory_order_relaxed) != caps) notify(InterfaceEvent::kCapabilities);
  if (auto other = peer()) {
    const std::uint32_t theirs = other->capenable_.load(std::memory_order_relaxed);
    const std::uint32_t wanted = (theirs & ~kPairCapabilities) | (caps & kPairCapabilities);
    if (other->capenable_.exchange(wanted, std::memory_order_relaxed) != wanted) {
      other->notify(InterfaceEvent::kCapabilities);
    }
  }
  return {};
}

Status Interface::add_multicast(const MacAddress& group) {
  if (pair_.destroyed.load(std::memory_order_acquire)) return no_such_interface(name());
  if (!group.is_multicast()) return {EINVAL, name() + ": SIOCADDMULTI: Invalid argument"};
  {
    std::lock_guard lock(mutex_);
    auto it = std::find_if(multicast_.begin(), multicast_.end(), [&](const auto& m) { return m.first == group; });
    if (it != multicast_.end()) {
      ++it->second;
      return {};
    }
    multicast_.emplace_back(group, 1);
  }
  notify(InterfaceEvent::kMulticast);
  return {};
}

Status Interface::delete_multicast(const MacAddress& group) {
  if (pair_.destroyed.load(std::memory_order_acquire)) return no_such_interface(name());
  {
    std::lock_guard lock(mutex_);
    auto it = std::find_if(multicast_.begin(), multicast_.end(), [&](const auto& m) { return m.first == group; });
    if (it == multicast_.end()) return {ENOENT, name() + ": SIOCDELMULTI: No such file or directory"};
    if (--it->second != 0) return {};
    multicast_.erase(it);
  }
  notify(InterfaceEvent::kMulticast);
  return {};
}

std::vector<MacAddress> Interface::multicast_groups() const {
  std::lock_guard lock(mutex_);
  std::vector<MacAddress> groups;
  groups.reserve(multicast_.size());
  for (const auto& [group, members] : multicast_) groups.push_back(group);
  return groups;
}

std::string Interface::description() const {
  std::lock_guard lock(mutex_);
  return description_;
}

Status Interface::set_description(std::string text) {
  if (pair_.destroyed.load(std::memory_order_acquire)) return no_such_interface(name());
  // FreeBSD's ifdescr_maxlen.
  constexpr std::size_t kMaxDescription = 1024;
  if (text.size() > kMaxDescription) return {ENAMETOOLONG, name() + ": SIOCSIFDESCR: File name too long"};
  {
    std::lock_guard lock(mutex_);
    if (description_ == text) return {};
    description_ = std::move(text);
  }
  notify(InterfaceEvent::kDescription);
  return {};
}

std::vector<std::string> Interface::groups() const {
  std::lock_guard lock(mutex_);
  return groups_;
}

Status Interface::add_group(std::string group) {
  if (pair_.destroyed.load(std::memory_order_acquire)) return no_such_interface(name());
  // IFNAMSIZ, as FreeBSD's ifconfig checks it.
  constexpr std::size_t kMaxGroup = 15;
  if (group.empty() || group.size() > kMaxGroup || (group.back() >= '0' && group.back() <= '9')) {
    return {EINVAL, name() + ": SIOCAIFGROUP: group names are 1 to 15 bytes and may not end in a digit"};
  }
  std::lock_guard lock(mutex_);
  if (std::find(groups_.begin(), groups_.end(), group) != groups_.end()) {
    return {EEXIST, name() + ": SIOCAIFGROUP: File exists"};
  }
  groups_.push_back(std::move(group));
  return {};
}

Status Interface::remove_group(std::string_view group) {
  if (pair_.destroyed.load(std::memory_order_acquire)) return no_such_interface(name());
  std::lock_guard lock(mutex_);
  auto it = std::find(groups_.begin(), groups_.end(), group);
  if (it == groups_.end()) return {ENOENT, name() + ": SIOCDIFGROUP: No such file or directory"};
  groups_.erase(it);
  return {};
}

std::size_t Interface::queued_frames() const {
  std::size_t n = 0;
  for (const auto& q : queues_) n += q->ring_.size();
  return n;
}

std::size_t Interface::queue_capacity() const {
  std::size_t n = 0;
  for (const auto& q : queues_) n += q->depth();
  return n;
}

InterfaceCounters Interface::counters() const {
  InterfaceCounters c;
  c.ipackets = read_counter(counters_->enqueued.ipackets);
  c.ierrors = read_counter(counters_->rx.ierrors);
  c.opackets = read_counter(counters_->tx.opackets);
  c.oerrors = read_counter(counters_->tx.oerrors);
  c.ibytes = read_counter(counters_->rx.ibytes);
  c.obytes = read_counter(counters_->tx.obytes);
  c.imcasts = read_counter(counters_->rx.imcasts);
  c.omcasts = read_counter(counters_->tx.omcasts);
  c.iqdrops = read_counter(counters_->rx.iqdrops);
  c.oqdrops = read_counter(counters_->tx.oqdrops);
  return c;
}

std::shared_ptr<Endpoint> Interface::endpoint() const {
  std::lock_guard lock(mutex_);
  return endpoint_;
}

void Interface::attach(std::shared_ptr<Endpoint> endpoint) {
  std::shared_ptr<Endpoint> old;
  {
    std::lock_guard lock(mutex_);
    old = std::exchange(endpoint_, std::move(endpoint));
  }
  for (auto& q : queues_) pair_.dispatcher->quiesce(*q);
}

void Interface::detach() { attach(nullptr); }

std::size_t Interface::peer_room() const {
  const std::shared_ptr<Interface> peer = this->peer();
  if (!peer) return Endpoint::kNoLimit;
  const std::shared_ptr<Endpoint> endpoint = peer->endpoint();
  if (!endpoint) return Endpoint::kNoLimit;
  // Frames a worker has taken off a queue but not yet handed over count too.
  // Read done() before the room, so that a frame handed over between the
  // two reads is counted twice rather than not at all; sums wrap as each
  // queue's counts do.
  std::uint32_t done = 0;
  for (const auto& q : peer->queues_) done += q->done();
  const std::size_t room = endpoint->room();
  if (room == Endpoint::kNoLimit) return room;
  std::uint32_t reserved = 0;
  for (const auto& q : peer->queues_) reserved += q->ring_.reserved();
  return room - std::min<std::size_t>(room, reserved - done);
}

void Interface::set_endpoint_link(bool up) {
  if (endpoint_link_.exchange(up, std::memory_order_acq_rel) == up) return;
  if (update_carrier()) notify(InterfaceEvent::kLinkState);
  if (peer_ != nullptr && peer_->update_carrier()) peer_->notify(InterfaceEvent::kLinkState);
}

// Runs with the engine lock held; observers hear of it later.
void Interface::set_driver_state(bool running) {
  if (running) {
    flags_.fetch_or(kFlagRunning, std::memory_order_acq_rel);
  } else {
    {
      std::lock_guard lock(mutex_);
      link_state_ = LinkState::kDown;
    }
    flags_.fetch_and(~(kFlagRunning | kFlagLowerUp), std::memory_order_acq_rel);
  }
}

// The carrier this end shows: always while RUNNING (FreeBSD), or only while
// the peer is RUNNING and UP too (veth) when the pair follows its peer. Reads
// the flags under mutex_, after the change that called it, so the last of
// several concurrent updates sees the final flags. True when it changed.
bool Interface::update_carrier() {
  std::lock_guard lock(mutex_);
  bool carrier =
      (flags_.load(std::memory_order_acquire) & kFlagRunning) != 0 && endpoint_link_.load(std::memory_order_acquire);
  if (pair_.carrier_follows_peer && carrier) {
    carrier = (peer_->flags_.load(std::memory_order_acquire) & kPeerReady) == kPeerReady &&
              peer_->endpoint_link_.load(std::memory_order_acquire);
  }
  const LinkState wanted = carrier ? LinkState::kUp : LinkState::kDown;
  if (link_state_ == wanted) return false;
  link_state_ = wanted;
  if (carrier) {
    flags_.fetch_or(kFlagLowerUp, std::memory_order_acq_rel);
  } else {
    flags_.fetch_and(~kFlagLowerUp, std::memory_order_acq_rel);
  }
  return true;
}

void Interface::notify(InterfaceEvent event) {
  std::vector<std::shared_ptr<Observer>> observers;
  {
    std::lock_guard lock(mutex_);
    observers.reserve(observers_.size());
    for (const auto& entry : observers_) observers.push_back(entry.observer);
  }
  for (const auto& observer : observers) (*observer)(*this, event);
}

Subscription Interface::subscribe(Observer observer) {
  std::lock_guard lock(mutex_);
  const std::uint64_t id = next_subscription_id_++;
  observers_.push_back({id, std::make_shared<Observer>(std::move(observer))});
  std::weak_ptr<Pair> weak = pair_.weak_from_this();
  return Subscription([weak, this, id] {
    if (auto pair = weak.lock()) {
      std::lock_guard guard(mutex_);
      std::erase_if(observers_, [id](const ObserverEntry& e) { return e.id == id; });
    }
  });
}

Subscription Interface::add_tap(Tap tap) {
  std::uint64_t id = 0;
  {
    std::lock_guard lock(mutex_);
    id = next_subscription_id_++;
    taps_.push_back({id, std::make_shared<const Tap>(std::move(tap))});
    publish_taps_locked();
  }
  notify(InterfaceEvent::kTaps);
  std::weak_ptr<Pair> weak = pair_.weak_from_this();
  return Subscription([weak, this, id] {
    if (auto pair = weak.lock()) {
      {
        std::lock_guard guard(mutex_);
        std::erase_if(taps_, [id](const TapEntry& e) { return e.id == id; });
        publish_taps_locked();
      }
      if (!pair->destroyed.load(std::memory_order_acquire)) notify(InterfaceEvent::kTaps);
    }
  });
}

void Interface::publish_taps_locked() {
  std::shared_ptr<const TapList> list;
  if (!taps_.empty()) {
    auto fresh = std::make_shared<TapList>();
    for (const auto& entry : taps_) fresh->push_back(entry.tap);
    list = std::move(fresh);
  }
  while (tap_list_lock_.test_and_set(std::memory_order_acquire)) cpu_relax();
  tap_list_.swap(list);
  tap_list_lock_.clear(std::memory_order_release);
  tap_count_.store(taps_.size(), std::memory_order_relaxed);
}

Subscription& Subscription::operator=(Subscription&& other) noexcept {
  if (this != &other) {
    reset();
    cancel_ = std::exchange(other.cancel_, nullptr);
  }
  return *this;
}

void Subscription::reset() {
  if (cancel_) std::exchange(cancel_, nullptr)();
}

// --- ifconfig face ---

namespace {

using BitNames = std::span<const std::pair<std::uint32_t, const char*>>;

// ifconfig's printb(): the value in hex, then the names of its bits.
std::string format_bits(std::uint32_t value, BitNames names) {
  char hex[16];
  std::snprintf(hex, sizeof hex, "%x", value);
  std::string text = hex;
  text += '<';
  bool first = true;
  for (const auto& [bit, name] : names) {
    if ((value & bit) == 0) continue;
    if (!first) text += ',';
    text += name;
    first = false;
  }
  text += '>';
  return text;
}

}  // namespace

std::string format_flags(std::uint32_t flags) {
  static constexpr std::pair<std::uint32_t, const char*> kNames[] = {
      {kFlagUp, "UP"},       {kFlagBroadcast, "BROADCAST"}, {kFlagDebug, "DEBUG"},       {kFlagRunning, "RUNNING"},
      {kFlagNoArp, "NOARP"}, {kFlagPromisc, "PROMISC"},     {kFlagAllMulti, "ALLMULTI"}, {kFlagSimplex, "SIMPLEX"},
      {kFlagLink0, "LINK0"}, {kFlagLink1, "LINK1"},         {kFlagLink2, "LINK2"},       {kFlagMulticast, "MULTICAST"},
  };
  // LOWER_UP is Linux's; FreeBSD's flags word has no such bit.
  return format_bits(flags & ~kFlagLowerUp, kNames);
}

std::string format_capabilities(std::uint32_t caps) {
  static constexpr std::pair<std::uint32_t, const char*> kNames[] = {
      {kCapRxCsum, "RXCSUM"},          {kCapTxCsum, "TXCSUM"},
      {kCapVlanMtu, "VLAN_MTU"},       {kCapVlanHwTagging, "VLAN_HWTAGGING"},
      {kCapRxCsumIpv6, "RXCSUM_IPV6"}, {kCapTxCsumIpv6, "TXCSUM_IPV6"},
  };
  return format_bits(caps, kNames);
}

std::string format_ifconfig(const Interface& ifp, std::span<const std::string> extra_lines) {
  std::string text =
      ifp.name() + ": flags=" + format_flags(ifp.flags()) + " metric 0 mtu " + std::to_string(ifp.mtu()) + "\n";
  if (auto description = ifp.description(); !description.empty()) text += "\tdescription: " + description + "\n";
  text += "\toptions=" + format_capabilities(ifp.enabled_capabilities()) + "\n";
  text += "\tether " + ifp.mac().to_string() + "\n";
  for (const auto& line : extra_lines) text += line + "\n";
  if (const auto groups = ifp.groups(); !groups.empty()) {
    text += "\tgroups:";
    for (const std::string& group : groups) text += " " + group;
    text += "\n";
  }
  text += "\tmedia: " + std::string(Interface::media()) + "\n";
  text += "\tstatus: " + std::string(ifp.media_status()) + "\n";
  return text;
}

std::string format_counters(const InterfaceCounters& c) {
  char text[256];
  std::snprintf(text, sizeof text,
                "\tinput:  packets %llu bytes %llu mcasts %llu errors %llu drops %llu\n"
                "\toutput: packets %llu bytes %llu mcasts %llu errors %llu drops %llu\n",
                static_cast<unsigned long long>(c.ipackets), static_cast<unsigned long long>(c.ibytes),
                static_cast<unsigned long long>(c.imcasts), static_cast<unsigned long long>(c.ierrors),
                static_cast<unsigned long long>(c.iqdrops), static_cast<unsigned long long>(c.opackets),
                static_cast<unsigned long long>(c.obytes), static_cast<unsigned long long>(c.omcasts),
                static_cast<unsigned long long>(c.oerrors), static_cast<unsigned long long>(c.oqdrops));
  return text;
}

}  // namespace epair
