#include "memif_protocol.hpp"

#include <algorithm>
#include <cstring>

#include "epair/words.hpp"

namespace epair::memif {

namespace {

Status bad(std::string message) { return {EINVAL, "memif: " + std::move(message)}; }

Result<std::uint64_t> number(std::string_view what, std::string_view text, std::uint64_t low, std::uint64_t high) {
  return parse_whole_number("memif: ", what, text, low, high);
}

bool printable(std::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char c) { return c > ' ' && c != 0x7f; });
}

// Little-endian fields at fixed offsets of a 128-byte message.
class Writer {
 public:
  explicit Writer(Wire& wire) : wire_(wire) {}
  void u8(std::size_t at, std::uint8_t v) { wire_[at] = v; }
  void u16(std::size_t at, std::uint16_t v) {
    for (std::size_t i = 0; i < 2; ++i) wire_[at + i] = static_cast<std::uint8_t>(v >> (8 * i));
  }
  void u32(std::size_t at, std::uint32_t v) {
    for (std::size_t i = 0; i < 4; ++i) wire_[at + i] = static_cast<std::uint8_t>(v >> (8 * i));
  }
  void u64(std::size_t at, std::uint64_t v) {
    for (std::size_t i = 0; i < 8; ++i) wire_[at + i] = static_cast<std::uint8_t>(v >> (8 * i));
  }
  void text(std::size_t at, std::size_t size, std::string_view s) {
    std::memcpy(&wire_[at], s.data(), std::min(s.size(), size));
  }

 private:
  Wire& wire_;
};

class Reader {
 public:
  explicit Reader(std::span<const std::uint8_t> bytes) : bytes_(bytes) {}
  std::uint8_t u8(std::size_t at) const { return bytes_[at]; }
  std::uint16_t u16(std::size_t at) const { return static_cast<std::uint16_t>(get(at, 2)); }
  std::uint32_t u32(std::size_t at) const { return static_cast<std::uint32_t>(get(at, 4)); }
  std::uint64_t u64(std::size_t at) const { return get(at, 8); }
  std::string text(std::size_t at, std::size_t size) const {
    const auto* start = reinterpret_cast<const char*>(&bytes_[at]);
    return {start, ::strnlen(start, size)};
  }

 private:
  std::uint64_t get(std::size_t at, std::size_t size) const {
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < size; ++i) v |= std::uint64_t{bytes_[at + i]} << (8 * i);
    return v;
  }
  std::span<const std::uint8_t> bytes_;
};

// Field offsets: the type takes the first two bytes, the body follows.
constexpr std::size_t kBody = 2;

}  // namespace

Result<Config> parse_config(std::string_view text) {
  const std::vector<std::string_view> words = split_words(text);
  Config config;
  std::vector<std::string_view> seen;
  for (std::size_t i = 0; i < words.size(); ++i) {
    const std::string_view word = words[i];
    static constexpr std::string_view kKnown[] = {"socket",    "role",         "id",       "secret",
                                                  "ring-size", "buffer-size",  "queues",   "rx-mode",
                                                  "rx-usecs",  "flow-control", "zero-copy"};
    if (std::find(std::begin(kKnown), std::end(kKnown), word) == std::end(kKnown)) {
      return bad("unknown setting '" + std::string(word) + "'");
    }
    if (std::find(seen.begin(), seen.end(), word) != seen.end()) return bad("'" + std::string(word) + "' given twice");
    seen.push_back(word);
    if (i + 1 >= words.size()) return bad("'" + std::string(word) + "' needs a value");
    const std::string_view value = words[++i];
    if (word == "socket") {
      if ((!value.starts_with('/') && !value.starts_with('@')) || value.size() < 2 || value.size() >= 108 ||
          !printable(value)) {
        return bad("socket must be an absolute path, or @name (abstract), of at most 107 bytes: '" +
                   std::string(value) + "'");
      }
      config.socket = std::string(value);
    } else if (word == "role") {
      if (value != "server" && value != "client")
        return bad("role is 'server' or 'client', not '" + std::string(value) + "'");
      config.role = value == "server" ? Role::kServer : Role::kClient;
    } else if (word == "id") {
      auto id = number("id", value, 0, 0xffffffffu);
      if (!id) return id.status();
      config.id = static_cast<std::uint32_t>(*id);
    } else if (word == "secret") {
      if (value.size() > kSecretSize || !printable(value)) {
        return bad("secret must be 1 to 24 printable characters");
      }
      config.secret = std::string(value);
    } else if (word == "ring-size") {
      auto size = number("ring-size", value, 2, 1u << kMaxLog2RingSize);
      if (!size) return size.status();
      if ((*size & (*size - 1)) != 0) return bad("ring-size must be a power of two: '" + std::string(value) + "'");
      config.log2_ring_size = static_cast<std::uint8_t>(__builtin_ctzll(*size));
    } else if (word == "buffer-size") {
      auto size = number("buffer-size", value, 128, 65535);
      if (!size) return size.status();
      config.buffer_size = static_cast<std::uint16_t>(*size);
    } else if (word == "queues") {
      auto queues = number("queues", value, 1, kMaxQueues);
      if (!queues) return queues.status();
      config.queues = static_cast<std::uint16_t>(*queues);
    } else if (word == "rx-usecs") {
      auto usecs = number("rx-usecs", value, 0, kMaxRxUsecs);
      if (!usecs) return usecs.status();
      config.rx_usecs = static_cast<std::uint32_t>(*usecs);
    } else if (word == "flow-control") {
      if (value != "on" && value != "off") {
        return bad("flow-control is 'on' or 'off', not '" + std::string(value) + "'");
      }
      config.flow_control = value == "on";
    } else if (word == "zero-copy") {
      if (value != "on" && value != "off") return bad("zero-copy is 'on' or 'off', not '" + std::string(value) + "'");
      config.zero_copy = value == "on";
    } else {
      if (value != "interrupt" && value != "polling") {
        return bad("rx-mode is 'interrupt' or 'polling', not '" + std::string(value) + "'");
      }
      config.rx_mode = value == "interrupt" ? RxMode::kInterrupt : RxMode::kPolling;
    }
  }
  if (config.socket.empty()) return bad("needs 'socket PATH'");
  // Polling never sleeps, so there is no interrupt to moderate.
  if (config.rx_usecs != 0 && config.rx_mode == RxMode::kPolling) return bad("rx-usecs needs rx-mode interrupt");
  // The client owns the buffers; a server could only copy into the client's.
  if (config.zero_copy && config.role != Role::kClient) return bad("zero-copy needs role client");
  if (config.zero_copy && config.queues != 1) return bad("zero-copy takes one queue pair");
  return config;
}

std::string format_config(const Config& c, bool with_secret) {
  std::string out =
      "socket " + c.socket + " role " + (c.role == Role::kServer ? "server" : "client") + " id " + std::to_string(c.id);
  if (!c.secret.empty()) out += with_secret ? " secret " + c.secret : " secret (set)";
  out += " ring-size " + std::to_string(c.ring_size()) + " buffer-size " + std::to_string(c.buffer_size) + " queues " +
         std::to_string(c.queues) + " rx-mode " + (c.rx_mode == RxMode::kInterrupt ? "interrupt" : "polling");
  if (c.rx_usecs != 0) out += " rx-usecs " + std::to_string(c.rx_usecs);
  if (c.flow_control) out += " flow-control on";
  if (c.zero_copy) out += " zero-copy on";
  return out;
}

Wire encode(const Message& message) {
  Wire wire{};
  Writer w(wire);
  w.u16(0, static_cast<std::uint16_t>(message.index() + 1));
  std::visit(
      [&](const auto& m) {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, Hello>) {
          w.text(kBody, kNameSize, m.name);
          w.u16(kBody + 32, m.min_version);
          w.u16(kBody + 34, m.max_version);
          w.u16(kBody + 36, m.max_region);
          w.u16(kBody + 38, m.max_s2c_ring);
          w.u16(kBody + 40, m.max_c2s_ring);
          w.u8(kBody + 42, m.max_log2_ring_size);
        } else if constexpr (std::is_same_v<T, Init>) {
          w.u16(kBody, m.version);
          w.u32(kBody + 2, m.id);
          w.u8(kBody + 6, m.mode);
          w.text(kBody + 7, kSecretSize, m.secret);
          w.text(kBody + 31, kNameSize, m.name);
        } else if constexpr (std::is_same_v<T, AddRegion>) {
          w.u16(kBody, m.index);
          w.u64(kBody + 2, m.size);
        } else if constexpr (std::is_same_v<T, AddRing>) {
          w.u16(kBody, m.flags);
          w.u16(kBody + 2, m.index);
          w.u16(kBody + 4, m.region);
          w.u32(kBody + 6, m.offset);
          w.u8(kBody + 10, m.log2_ring_size);
          w.u16(kBody + 11, m.private_header_size);
        } else if constexpr (std::is_same_v<T, Connect> || std::is_same_v<T, Connected>) {
          w.text(kBody, kNameSize, m.if_name);
        } else if constexpr (std::is_same_v<T, Disconnect>) {
          w.u32(kBody, m.code);
          w.text(kBody + 4, kReasonSize - 1, m.reason);
        }
      },
      message);
  return wire;
}

Result<Message> decode(std::span<const std::uint8_t> bytes) {
  if (bytes.size() != kMessageSize) {
    return Status{EPROTO, "memif: a message of " + std::to_string(bytes.size()) + " bytes, not 128"};
  }
  const Reader r(bytes);
  switch (static_cast<MessageType>(r.u16(0))) {
    case MessageType::kAck:
      return Message{Ack{}};
    case MessageType::kHello:
      return Message{Hello{r.text(kBody, kNameSize), r.u16(kBody + 32), r.u16(kBody + 34), r.u16(kBody + 36),
                           r.u16(kBody + 38), r.u16(kBody + 40), r.u8(kBody + 42)}};
    case MessageType::kInit:
      return Message{Init{r.u16(kBody), r.u32(kBody + 2), r.u8(kBody + 6), r.text(kBody + 7, kSecretSize),
                          r.text(kBody + 31, kNameSize)}};
    case MessageType::kAddRegion:
      return Message{AddRegion{r.u16(kBody), r.u64(kBody + 2)}};
    case MessageType::kAddRing:
      return Message{AddRing{r.u16(kBody), r.u16(kBody + 2), r.u16(kBody + 4), r.u32(kBody + 6), r.u8(kBody + 10),
                             r.u16(kBody + 11)}};
    case MessageType::kConnect:
      return Message{Connect{r.text(kBody, kNameSize)}};
    case MessageType::kConnected:
      return Message{Connected{r.text(kBody, kNameSize)}};
    case MessageType::kDisconnect:
      return Message{Disconnect{r.u32(kBody), r.text(kBody + 4, kReasonSize)}};
    case MessageType::kNone:
      break;
  }
  return Status{EPROTO, "memif: unknown message type " + std::to_string(r.u16(0))};
}

std::string_view type_name(const Message& message) {
  static constexpr std::string_view kNames[] = {"ack",      "hello",   "init",      "add_region",
                                                "add_ring", "connect", "connected", "disconnect"};
  return kNames[message.index()];
}

bool descriptor_fits(const Descriptor& d, std::span<const std::uint64_t> region_sizes) {
  if (d.region >= region_sizes.size()) return false;
  return std::uint64_t{d.offset} + d.length <= region_sizes[d.region];
}

std::string check_ring(const AddRing& ring, std::span<const std::uint64_t> region_sizes,
                       std::uint8_t max_log2_ring_size) {
  if (ring.log2_ring_size == 0 || ring.log2_ring_size > max_log2_ring_size) {
    return "ring size 2^" + std::to_string(ring.log2_ring_size) + " is not 2^1..2^" +
           std::to_string(max_log2_ring_size);
  }
  if (ring.region >= region_sizes.size()) return "ring in unknown region " + std::to_string(ring.region);
  if (ring.offset % 8 != 0) return "ring at offset " + std::to_string(ring.offset) + " is not 8-byte aligned";
  const std::uint64_t end = std::uint64_t{ring.offset} + ring_bytes(1u << ring.log2_ring_size);
  if (end > region_sizes[ring.region]) {
    return "ring at offset " + std::to_string(ring.offset) + " runs past its region (" +
           std::to_string(region_sizes[ring.region]) + " bytes)";
  }
  return {};
}

}  // namespace epair::memif
