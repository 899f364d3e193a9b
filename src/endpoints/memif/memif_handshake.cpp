#include "memif_handshake.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>

namespace epair::memif {

namespace {

Status out_of_turn(const Message& message) {
  return {EPROTO, "protocol: unexpected " + std::string(type_name(message)) + " message"};
}

}  // namespace

Status disconnected_by_peer(const Disconnect& d) {
  return {ECONNRESET, "peer disconnected: " + (d.reason.empty() ? "no reason given" : d.reason)};
}

Result<ClientHandshake::Reply> ClientHandshake::on_message(const Message& message) {
  if (const auto* d = std::get_if<Disconnect>(&message)) return disconnected_by_peer(*d);
  switch (state_) {
    case State::kHello: {
      const auto* hello = std::get_if<Hello>(&message);
      if (hello == nullptr) return out_of_turn(message);
      return start(*hello);
    }
    case State::kInit:
      if (!std::holds_alternative<Ack>(message)) return out_of_turn(message);
      state_ = State::kSetup;
      return Reply{AddRegion{0, memory_.layout.region_size()}, memory_.fd.get()};
    case State::kSetup:
      if (!std::holds_alternative<Ack>(message)) return out_of_turn(message);
      if (extra_region_ && !extra_region_sent_) {
        extra_region_sent_ = true;
        return Reply{AddRegion{1, settings_.extra_region_size}, settings_.extra_region_fd};
      }
      return announce_next();
    case State::kConnecting:
      if (const auto* connected = std::get_if<Connected>(&message)) {
        if (!connected->if_name.empty()) peer_name_ += "/" + connected->if_name;
        state_ = State::kConnected;
        return Reply{};
      }
      return out_of_turn(message);
    case State::kConnected:
      break;
  }
  return out_of_turn(message);
}

Result<ClientHandshake::Reply> ClientHandshake::start(const Hello& hello) {
  if (hello.min_version > kVersion || hello.max_version < kVersion) {
    return Status{EPROTO, "the server speaks no memif 2.0"};
  }
  peer_name_ = hello.name;
  Layout layout;
  // HELLO gives the highest ring index the server takes, so at most 256.
  layout.queues = std::min<std::uint16_t>(
      {settings_.queues, static_cast<std::uint16_t>(std::min<std::uint32_t>(hello.max_c2s_ring + 1u, kMaxQueues)),
       static_cast<std::uint16_t>(std::min<std::uint32_t>(hello.max_s2c_ring + 1u, kMaxQueues))});
  const std::uint8_t log2 = std::min(settings_.log2_ring_size, hello.max_log2_ring_size);
  if (log2 == 0) return Status{EPROTO, "the server offers no ring size"};
  layout.ring_size = 1u << log2;
  layout.buffer_size = settings_.buffer_size;
  auto memory = make_client_memory(layout, log2, regions_);
  if (!memory) return memory.status();
  memory_ = std::move(*memory);
  if (settings_.extra_region_fd >= 0 && hello.max_region >= 1) {
    auto extra = Mapping::map(settings_.extra_region_fd, settings_.extra_region_size);
    if (!extra) return extra.status();
    regions_.add(std::move(*extra));
    extra_region_ = true;
  }
  Init init;
  init.id = settings_.id;
  init.secret = settings_.secret;
  init.name = settings_.name;
  state_ = State::kInit;
  return Reply{init};
}

ClientHandshake::Reply ClientHandshake::announce_next() {
  const std::size_t c2s_count = memory_.rings[1].size();
  const std::size_t total = c2s_count + memory_.rings[0].size();
  if (next_ring_ == total) {
    state_ = State::kConnecting;
    return {Connect{settings_.if_name}};
  }
  // C2S rings first, as DPDK and libmemif announce them.
  const int dir = next_ring_ < c2s_count ? 1 : 0;
  const std::size_t i = dir == 1 ? next_ring_ : next_ring_ - c2s_count;
  ++next_ring_;
  return {memory_.rings[dir][i], memory_.interrupts[dir][i].get()};
}

Result<std::optional<Message>> ServerHandshake::on_message(const Message& message, os::UniqueFd fd) {
  switch (state_) {
    case State::kInit: {
      const auto* init = std::get_if<Init>(&message);
      if (init == nullptr) return out_of_turn(message);
      if (init->version != kVersion) return Status{EPROTO, "memif version mismatch"};
      if (init->id != settings_.id) return Status{ENOENT, "no interface with id " + std::to_string(init->id)};
      if (init->mode != 0) return Status{EPROTO, "only Ethernet mode is supported"};
      if (!settings_.secret.empty() && init->secret != settings_.secret) {
        return Status{EACCES, init->secret.empty() ? "secret required" : "incorrect secret"};
      }
      peer_name_ = init->name;
      state_ = State::kSetup;
      return std::optional<Message>(Ack{});
    }
    case State::kSetup:
      if (const auto* region = std::get_if<AddRegion>(&message)) return add_region(*region, std::move(fd));
      if (const auto* ring = std::get_if<AddRing>(&message)) return add_ring(*ring, std::move(fd));
      if (const auto* connect = std::get_if<Connect>(&message)) {
        if (rings_[0].empty() || rings_[1].empty()) return Status{EPROTO, "connect before rings"};
        if (!connect->if_name.empty()) peer_name_ += "/" + connect->if_name;
        state_ = State::kConnected;
        return std::optional<Message>();
      }
      return out_of_turn(message);
    case State::kConnected:
      break;
  }
  return out_of_turn(message);
}

Result<std::optional<Message>> ServerHandshake::add_region(const AddRegion& region, os::UniqueFd fd) {
  const std::string name = "region " + std::to_string(region.index);
  if (region.index != regions_.maps.size() || region.index > kMaxRegionIndex) {
    return Status{EPROTO, name + " out of order"};
  }
  if (!fd) return Status{EPROTO, name + " without a file descriptor"};
  if (region.size == 0 || region.size > (std::uint64_t{1} << 40)) {
    return Status{EPROTO, "region of " + std::to_string(region.size) + " bytes"};
  }
  // A region that could shrink under us would fault on access.
  const int seals = ::fcntl(fd.get(), F_GET_SEALS);
  if (seals < 0 || (seals & F_SEAL_SHRINK) == 0) return Status{EPROTO, "region not sealed against shrinking"};
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || static_cast<std::uint64_t>(st.st_size) < region.size) {
    return Status{EPROTO, "region file smaller than announced"};
  }
  auto map = Mapping::map(fd.get(), region.size);
  if (!map) return map.status();
  regions_.add(std::move(*map));
  return std::optional<Message>(Ack{});
}

Result<std::optional<Message>> ServerHandshake::add_ring(const AddRing& ring, os::UniqueFd fd) {
  const bool c2s = (ring.flags & AddRing::kFlagC2S) != 0;
  auto& list = rings_[c2s ? 1 : 0];
  if (ring.index != list.size() || ring.index >= settings_.queues) {
    return Status{EPROTO, "ring " + std::to_string(ring.index) + " out of order"};
  }
  if (std::string problem = check_ring(ring, regions_.sizes, settings_.log2_ring_size); !problem.empty()) {
    return Status{EPROTO, problem};
  }
  // Read when draining and written after transmitting: a peer's blocking
  // eventfd would stall either (DPDK and libmemif make them non-blocking
  // already; the flag is shared with the peer).
  if (fd) {
    if (Status nb = make_nonblocking(fd.get(), "interrupt eventfd of ring " + std::to_string(ring.index)); !nb) {
      return nb;
    }
  }
  list.push_back(ring);
  interrupts_[c2s ? 1 : 0].push_back(std::move(fd));
  return std::optional<Message>(Ack{});
}

}  // namespace epair::memif
