// Fuzzes what a VXLAN end reads off the network: any datagram is either
// dropped for one cause or carries a frame for the end's VNI, whose inner
// checksum, once filled, verifies; and the settings of a tunnel read back
// what they print.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "fuzz_check.hpp"
#include "vxlan_config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace epair::vxlan;
  if (size == 0) return 0;
  // The first byte picks the end's VNI among a few, so that matches happen.
  const std::uint32_t vni = data[0] % 4 == 3 ? kMaxVni : data[0] % 4;
  const std::span<const std::uint8_t> datagram(data + 1, size - 1);
  const Drop drop = check_datagram(datagram, vni);
  if (drop == Drop::kNone) {
    FUZZ_CHECK(datagram.size() >= kHeaderSize + 14);
    FUZZ_CHECK((datagram[0] & 0x08) != 0);
    std::uint8_t header[kHeaderSize];
    write_header(header, vni);
    FUZZ_CHECK(header[4] == datagram[4] && header[5] == datagram[5] && header[6] == datagram[6]);
    std::vector<std::uint8_t> frame(datagram.begin() + kHeaderSize, datagram.end());
    if (fill_offloaded_checksum(frame)) {
      FUZZ_CHECK(!fill_offloaded_checksum(frame));
      FUZZ_CHECK(frame.size() == datagram.size() - kHeaderSize);
    }
  } else if (drop == Drop::kShort) {
    FUZZ_CHECK(datagram.size() < kHeaderSize + 14);
  }
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  if (auto config = parse_config(text)) {
    auto again = parse_config(format_config(*config));
    FUZZ_CHECK(again && *again == *config);
  } else {
    FUZZ_CHECK(config.status().value() == EINVAL && !config.status().message().empty());
  }
  return 0;
}
