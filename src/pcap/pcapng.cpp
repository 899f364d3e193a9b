#include "pcapng.hpp"

#include <cstring>

namespace epair::pcapng {

namespace {

constexpr std::uint32_t kByteOrderMagic = 0x1A2B3C4D;
constexpr std::uint16_t kOptEnd = 0;
constexpr std::uint16_t kShbUserApplication = 4;
constexpr std::uint16_t kIfName = 2;
constexpr std::uint16_t kIfTsresol = 9;
constexpr std::uint16_t kEpbFlags = 2;
constexpr std::uint16_t kIsbIfRecv = 4;
constexpr std::uint16_t kIsbFilterAccept = 6;
constexpr std::uint16_t kIsbOsDrop = 7;
constexpr std::uint16_t kIsbUsrDeliv = 8;

template <class T>
void put(std::string& out, T value) {
  out.append(reinterpret_cast<const char*>(&value), sizeof value);
}

void pad(std::string& out) { out.append((4 - out.size() % 4) % 4, '\0'); }

void put_option(std::string& out, std::uint16_t code, const void* value, std::uint16_t length) {
  put(out, code);
  put(out, length);
  out.append(static_cast<const char*>(value), length);
  pad(out);
}

template <class T>
void put_option(std::string& out, std::uint16_t code, T value) {
  put_option(out, code, &value, sizeof value);
}

// Writes the block around what fill() appends: type, length, body, length.
template <class Fill>
void append_block(std::string& out, std::uint32_t type, Fill fill) {
  const std::size_t start = out.size();
  put(out, type);
  put(out, std::uint32_t{0});
  fill();
  put(out, kOptEnd);
  put(out, std::uint16_t{0});
  const auto length = static_cast<std::uint32_t>(out.size() - start + 4);
  put(out, length);
  std::memcpy(out.data() + start + 4, &length, sizeof length);
}

template <class T>
T get(std::span<const std::uint8_t> bytes, std::size_t offset) {
  T value{};
  if (offset + sizeof value <= bytes.size()) std::memcpy(&value, bytes.data() + offset, sizeof value);
  return value;
}

// Calls visit(code, value) for each option from offset on.
template <class Visit>
void for_each_option(std::span<const std::uint8_t> body, std::size_t offset, Visit visit) {
  while (offset + 4 <= body.size()) {
    const auto code = get<std::uint16_t>(body, offset);
    const auto length = get<std::uint16_t>(body, offset + 2);
    if (code == kOptEnd || offset + 4 + length > body.size()) return;
    visit(code, body.subspan(offset + 4, length));
    offset += 4 + ((length + 3u) & ~3u);
  }
}

}  // namespace

void append_section_header(std::string& out, std::string_view application) {
  append_block(out, kSectionHeader, [&] {
    put(out, kByteOrderMagic);
    put(out, std::uint16_t{1});
    put(out, std::uint16_t{0});
    put(out, std::int64_t{-1});
    put_option(out, kShbUserApplication, application.data(), static_cast<std::uint16_t>(application.size()));
  });
}

void append_interface(std::string& out, std::string_view name, std::uint32_t snaplen) {
  append_block(out, kInterfaceDescription, [&] {
    put(out, std::uint16_t{1});  // LINKTYPE_ETHERNET
    put(out, std::uint16_t{0});
    put(out, snaplen);
    put_option(out, kIfName, name.data(), static_cast<std::uint16_t>(name.size()));
    put_option(out, kIfTsresol, std::uint8_t{9});
  });
}

void append_packet(std::string& out, std::uint32_t interface, std::uint64_t timestamp_ns, Direction direction,
                   std::span<const std::uint8_t> data, std::uint32_t wire_length) {
  append_block(out, kEnhancedPacket, [&] {
    put(out, interface);
    put(out, static_cast<std::uint32_t>(timestamp_ns >> 32));
    put(out, static_cast<std::uint32_t>(timestamp_ns));
    put(out, static_cast<std::uint32_t>(data.size()));
    put(out, wire_length);
    out.append(reinterpret_cast<const char*>(data.data()), data.size());
    pad(out);
    if (direction != Direction::kUnknown) put_option(out, kEpbFlags, static_cast<std::uint32_t>(direction));
  });
}

void append_statistics(std::string& out, std::uint32_t interface, const Statistics& stats) {
  append_block(out, kInterfaceStatistics, [&] {
    put(out, interface);
    put(out, static_cast<std::uint32_t>(stats.timestamp_ns >> 32));
    put(out, static_cast<std::uint32_t>(stats.timestamp_ns));
    put_option(out, kIsbIfRecv, stats.received);
    put_option(out, kIsbFilterAccept, stats.accepted);
    put_option(out, kIsbOsDrop, stats.dropped);
    put_option(out, kIsbUsrDeliv, stats.delivered);
  });
}

void Reader::feed(std::span<const std::uint8_t> bytes) {
  if (offset_ != 0 && offset_ == buffer_.size()) {
    buffer_.clear();
    offset_ = 0;
  }
  buffer_.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

std::optional<Block> Reader::next() {
  if (!error_.empty()) return std::nullopt;
  if (offset_ > (1u << 20) && offset_ * 2 > buffer_.size()) {
    buffer_.erase(0, offset_);
    offset_ = 0;
  }
  const std::span<const std::uint8_t> rest(reinterpret_cast<const std::uint8_t*>(buffer_.data()) + offset_,
                                           buffer_.size() - offset_);
  if (rest.size() < 12) return std::nullopt;
  const auto type = get<std::uint32_t>(rest, 0);
  const auto length = get<std::uint32_t>(rest, 4);
  if (length < 12 || length % 4 != 0 || (!started_ && type != kSectionHeader)) {
    error_ = "not a pcapng stream";
    return std::nullopt;
  }
  if (type == kSectionHeader && get<std::uint32_t>(rest, 8) != kByteOrderMagic) {
    error_ = "pcapng stream in the other byte order";
    return std::nullopt;
  }
  if (rest.size() < length) return std::nullopt;
  started_ = true;
  offset_ += length;
  return Block{type, rest.subspan(8, length - 12)};
}

std::optional<Packet> parse_packet(const Block& block) {
  if (block.type != kEnhancedPacket || block.body.size() < 20) return std::nullopt;
  Packet packet;
  packet.interface = get<std::uint32_t>(block.body, 0);
  packet.timestamp_ns = (std::uint64_t{get<std::uint32_t>(block.body, 4)} << 32) | get<std::uint32_t>(block.body, 8);
  const auto captured = get<std::uint32_t>(block.body, 12);
  packet.wire_length = get<std::uint32_t>(block.body, 16);
  if (20 + std::size_t{captured} > block.body.size()) return std::nullopt;
  packet.data = block.body.subspan(20, captured);
  for_each_option(block.body, 20 + ((captured + 3u) & ~3u), [&](std::uint16_t code, auto value) {
    if (code == kEpbFlags && value.size() == 4) {
      packet.direction = static_cast<Direction>(get<std::uint32_t>(value, 0) & 3);
    }
  });
  return packet;
}

std::optional<Statistics> parse_statistics(const Block& block, std::uint32_t* interface) {
  if (block.type != kInterfaceStatistics || block.body.size() < 12) return std::nullopt;
  if (interface != nullptr) *interface = get<std::uint32_t>(block.body, 0);
  Statistics stats;
  stats.timestamp_ns = (std::uint64_t{get<std::uint32_t>(block.body, 4)} << 32) | get<std::uint32_t>(block.body, 8);
  for_each_option(block.body, 12, [&](std::uint16_t code, auto value) {
    if (value.size() != 8) return;
    const auto n = get<std::uint64_t>(value, 0);
    if (code == kIsbIfRecv) stats.received = n;
    if (code == kIsbFilterAccept) stats.accepted = n;
    if (code == kIsbOsDrop) stats.dropped = n;
    if (code == kIsbUsrDeliv) stats.delivered = n;
  });
  return stats;
}

std::string parse_interface_name(const Block& block) {
  std::string name;
  if (block.type != kInterfaceDescription) return name;
  for_each_option(block.body, 8, [&](std::uint16_t code, auto value) {
    if (code == kIfName) name.assign(reinterpret_cast<const char*>(value.data()), value.size());
  });
  return name;
}

}  // namespace epair::pcapng
