#include "memif_handshake.hpp"

#include <algorithm>

namespace epair::memif {

Status disconnected_by_peer(const Disconnect& d) {
  return {ECONNRESET, "peer disconnected: " + (d.reason.empty() ? "no reason given" : d.reason)};
}

Result<ClientHandshake::Reply> ClientHandshake::on_message(const Message& message) {
  if (const auto* d = std::get_if<Disconnect>(&message)) return disconnected_by_peer(*d);
  const auto unexpected = [&] {
    return Status{EPROTO, "protocol: unexpected " + std::string(type_name(message)) + " message"};
  };
  switch (state_) {
    case State::kHello: {
      const auto* hello = std::get_if<Hello>(&message);
      if (hello == nullptr) return unexpected();
      return start(*hello);
    }
    case State::kInit:
      if (!std::holds_alternative<Ack>(message)) return unexpected();
      state_ = State::kSetup;
      return Reply{AddRegion{0, memory_.layout.region_size()}, memory_.fd.get()};
    case State::kSetup:
      if (!std::holds_alternative<Ack>(message)) return unexpected();
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
      return unexpected();
    case State::kConnected:
      break;
  }
  return unexpected();
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

}  // namespace epair::memif
