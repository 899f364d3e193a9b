// memif, the shared-memory packet interface of VPP, DPDK (net_memif) and
// libmemif: the settings of an end (`epairctl NAME attach memif ...`), the
// control messages exchanged over the Unix socket, and the layout of rings
// and descriptors in the shared regions. No sockets and no mappings here:
// epairctl and epaird's request check link it, and the fuzzers feed it.
//
// Roles: the client creates the regions (memfd) and the rings in them and
// hands them over; the server maps them. Ring directions are named from the
// client: C2S rings carry frames client to server, S2C rings server to
// client. In both, the client owns the buffers.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "epair/status.hpp"

namespace epair::memif {

inline constexpr std::uint32_t kCookie = 0x3E31F20;
inline constexpr std::uint16_t kVersion = 0x0200;  // 2.0
inline constexpr std::size_t kMessageSize = 128;
inline constexpr std::size_t kNameSize = 32;
inline constexpr std::size_t kSecretSize = 24;
inline constexpr std::size_t kReasonSize = 96;
/// A ring: three 64-byte cache lines (cookie, flags and head; tail; then
/// the descriptors), 16 bytes per descriptor.
inline constexpr std::size_t kRingHeaderSize = 128;
inline constexpr std::size_t kRingHeadOffset = 6;
inline constexpr std::size_t kRingTailOffset = 64;
inline constexpr std::size_t kRingFlagsOffset = 4;
inline constexpr std::size_t kDescriptorSize = 16;
inline constexpr std::uint16_t kRingFlagMaskInterrupt = 1;  ///< the receiver polls: no eventfd write needed
inline constexpr std::uint16_t kDescriptorNext = 1;         ///< the frame goes on in the next descriptor
inline constexpr std::uint8_t kMaxLog2RingSize = 14;
inline constexpr std::uint16_t kMaxQueues = 255;
inline constexpr std::uint16_t kMaxRegions = 255;
inline constexpr std::uint32_t kMaxRxUsecs = 10000;

enum class Role { kServer, kClient };
enum class RxMode { kInterrupt, kPolling };

/// The settings of a memif end.
struct Config {
  std::string socket;
  Role role = Role::kServer;
  std::uint32_t id = 0;
  std::string secret;
  std::uint8_t log2_ring_size = 10;  ///< 1024 descriptors
  std::uint16_t buffer_size = 2048;
  std::uint16_t queues = 1;  ///< queue pairs
  RxMode rx_mode = RxMode::kInterrupt;
  /// Interrupt moderation, as ethtool's rx-usecs: 0 reads the rings at
  /// every interrupt; N masks interrupts while frames keep coming and reads
  /// the rings every N microseconds instead.
  std::uint32_t rx_usecs = 0;
  /// Flow control: frames stay on the peer's rings while the other end of
  /// the epair has no room for them (Interface::peer_room()), instead of
  /// crossing to be dropped there; the peer finds its ring full, as a
  /// sender that honours 802.3x PAUSE stops.
  bool flow_control = false;
  /// Zero-copy (role client, one queue pair): when the other end of the
  /// epair is a memif client with zero-copy on too, both announce the
  /// pair's relay buffers as region 1, and a frame the program puts down
  /// here crosses as a descriptor on the other end's ring, its bytes never
  /// copied (RelayPool).
  bool zero_copy = false;

  bool operator==(const Config&) const = default;
  std::uint32_t ring_size() const { return 1u << log2_ring_size; }
};

/// True when the words of an attach start with the kind "memif".
inline bool is_memif_attach(std::string_view words) {
  return words.starts_with("memif") && (words.size() == 5 || words[5] == ' ');
}

/// Parses the words after `attach memif`: socket PATH [role server|client]
/// [id N] [secret S] [ring-size N] [buffer-size N] [queues N]
/// [rx-mode interrupt|polling] [rx-usecs N] [flow-control on|off]
/// [zero-copy on|off]. EINVAL
/// with one line naming the word.
Result<Config> parse_config(std::string_view text);
/// The settings in parse_config()'s words; the secret is not shown.
std::string format_config(const Config& config, bool with_secret = true);

// --- control messages: 128 bytes each, little-endian, packed ---

enum class MessageType : std::uint16_t {
  kNone,
  kAck,
  kHello,
  kInit,
  kAddRegion,
  kAddRing,
  kConnect,
  kConnected,
  kDisconnect,
};

/// Server to client, first: what the server accepts.
struct Hello {
  std::string name;
  std::uint16_t min_version = kVersion;
  std::uint16_t max_version = kVersion;
  std::uint16_t max_region = 0;  ///< highest region index
  std::uint16_t max_s2c_ring = 0;
  std::uint16_t max_c2s_ring = 0;
  std::uint8_t max_log2_ring_size = 0;
};
/// Client to server: which interface, and the secret.
struct Init {
  std::uint16_t version = kVersion;
  std::uint32_t id = 0;
  std::uint8_t mode = 0;  ///< 0: Ethernet
  std::string secret;
  std::string name;
};
/// Client to server, with the region's memfd.
struct AddRegion {
  std::uint16_t index = 0;
  std::uint64_t size = 0;
};
/// Client to server, with the ring's interrupt eventfd.
struct AddRing {
  static constexpr std::uint16_t kFlagC2S = 1;
  std::uint16_t flags = 0;
  std::uint16_t index = 0;
  std::uint16_t region = 0;
  std::uint32_t offset = 0;
  std::uint8_t log2_ring_size = 0;
  std::uint16_t private_header_size = 0;
};
struct Ack {};
struct Connect {
  std::string if_name;
};
struct Connected {
  std::string if_name;
};
struct Disconnect {
  std::uint32_t code = 0;
  std::string reason;
};

using Message = std::variant<Ack, Hello, Init, AddRegion, AddRing, Connect, Connected, Disconnect>;
using Wire = std::array<std::uint8_t, kMessageSize>;

Wire encode(const Message& message);
/// EPROTO for a message of another size or of an unknown type. Names are
/// cut at their first NUL and at their field's size.
Result<Message> decode(std::span<const std::uint8_t> bytes);
std::string_view type_name(const Message& message);

// --- shared memory ---

/// A buffer descriptor as it lies in a ring.
struct Descriptor {
  std::uint16_t flags = 0;
  std::uint16_t region = 0;
  std::uint32_t length = 0;
  std::uint32_t offset = 0;
  std::uint32_t metadata = 0;
};

/// The bytes of ring size `ring_size`: header and descriptors.
constexpr std::uint64_t ring_bytes(std::uint32_t ring_size) {
  return kRingHeaderSize + std::uint64_t{kDescriptorSize} * ring_size;
}

/// Where a descriptor's buffer lies in one of the regions, given their
/// sizes: the region index is known and offset + length stays inside it.
/// Checked in 64 bits, so no sum wraps.
bool descriptor_fits(const Descriptor& d, std::span<const std::uint64_t> region_sizes);

/// A ring a client announced, checked against the regions it announced:
/// its index and size within what the server offered, and header plus
/// descriptors inside its region. Empty when fine, else the reason.
std::string check_ring(const AddRing& ring, std::span<const std::uint64_t> region_sizes,
                       std::uint8_t max_log2_ring_size);

/// The layout a client gives region 0 (rings, then every ring's buffers):
/// C2S rings 0..q-1, S2C rings 0..q-1, then ring_size buffers per ring in
/// the same order.
struct Layout {
  std::uint16_t queues = 1;
  std::uint32_t ring_size = 1024;
  std::uint32_t buffer_size = 2048;

  std::uint64_t ring_offset(bool c2s, std::uint16_t index) const {
    return ring_bytes(ring_size) * (c2s ? index : queues + index);
  }
  std::uint64_t buffer_offset(bool c2s, std::uint16_t index, std::uint32_t slot) const {
    const std::uint64_t first = ring_bytes(ring_size) * 2 * queues;
    const std::uint64_t ring = c2s ? index : queues + index;
    return first + (ring * ring_size + slot) * buffer_size;
  }
  std::uint64_t region_size() const { return buffer_offset(true, 2 * queues, 0); }
};

}  // namespace epair::memif
