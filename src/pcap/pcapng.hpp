// pcapng (draft-ietf-opsawg-pcapng) as epair captures write it: a section
// header, an interface description per end (Ethernet, nanosecond
// timestamps), enhanced packet blocks with the direction in epb_flags, and
// an interface statistics block with the capture's counters at the end.
// libpcap reads pcapng but cannot write it. Blocks are written in the host's
// byte order, as the format allows; the reader takes the same order only
// (it reads what epaird wrote on this host).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace epair::pcapng {

inline constexpr std::uint32_t kSectionHeader = 0x0A0D0D0A;
inline constexpr std::uint32_t kInterfaceDescription = 1;
inline constexpr std::uint32_t kInterfaceStatistics = 5;
inline constexpr std::uint32_t kEnhancedPacket = 6;

enum class Direction : std::uint8_t { kUnknown = 0, kIn = 1, kOut = 2 };

void append_section_header(std::string& out, std::string_view application);
/// linktype 1 (Ethernet), if_tsresol 9 (nanoseconds).
void append_interface(std::string& out, std::string_view name, std::uint32_t snaplen);
void append_packet(std::string& out, std::uint32_t interface, std::uint64_t timestamp_ns, Direction direction,
                   std::span<const std::uint8_t> data, std::uint32_t wire_length);

struct Statistics {
  std::uint64_t timestamp_ns = 0;
  std::uint64_t received = 0;   ///< isb_ifrecv: frames shown to the capture
  std::uint64_t accepted = 0;   ///< isb_filteraccept: kept by the filter
  std::uint64_t dropped = 0;    ///< isb_osdrop: lost by the capture (full buffer)
  std::uint64_t delivered = 0;  ///< isb_usrdeliv: written to the reader
};
void append_statistics(std::string& out, std::uint32_t interface, const Statistics& stats);

/// A block found by Reader; body is the bytes between the length fields.
struct Block {
  std::uint32_t type = 0;
  std::span<const std::uint8_t> body;
};

struct Packet {
  std::uint32_t interface = 0;
  std::uint64_t timestamp_ns = 0;
  Direction direction = Direction::kUnknown;
  std::uint32_t wire_length = 0;
  std::span<const std::uint8_t> data;
};

/// Splits a byte stream into blocks as it arrives.
class Reader {
 public:
  void feed(std::span<const std::uint8_t> bytes);
  /// The next whole block, valid until the next call; nothing when more
  /// bytes are needed. error() is set when the stream is not pcapng.
  std::optional<Block> next();
  const std::string& error() const { return error_; }
  /// Bytes received and not yet returned as blocks.
  std::size_t pending() const { return buffer_.size() - offset_; }

 private:
  std::string buffer_;
  std::size_t offset_ = 0;
  bool started_ = false;
  std::string error_;
};

std::optional<Packet> parse_packet(const Block& block);
std::optional<Statistics> parse_statistics(const Block& block, std::uint32_t* interface = nullptr);
/// if_name of an interface description block (empty when it has none).
std::string parse_interface_name(const Block& block);

}  // namespace epair::pcapng
