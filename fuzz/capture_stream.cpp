// Fuzzes epairctl's side of a capture: the pcapng stream epaird sends is
// split into blocks, packets and statistics are parsed, and every packet is
// summarised as tcpdump would print it. The input is fed in pieces of the
// sizes its first byte picks, as a socket would deliver it.
#include <cstddef>
#include <cstdint>
#include <span>

#include "fuzz_check.hpp"
#include "pcapng.hpp"
#include "summary.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace epair;
  if (size == 0) return 0;
  const std::size_t piece = 1 + data[0] % 64;
  const std::span<const std::uint8_t> stream(data + 1, size - 1);
  pcapng::Reader reader;
  std::size_t fed = 0;
  while (fed < stream.size() && reader.error().empty()) {
    const std::size_t n = std::min(piece, stream.size() - fed);
    reader.feed(stream.subspan(fed, n));
    fed += n;
    while (auto block = reader.next()) {
      FUZZ_CHECK(block->body.size() <= stream.size());
      if (auto packet = pcapng::parse_packet(*block)) {
        FUZZ_CHECK(packet->data.size() <= block->body.size());
        FUZZ_CHECK(!pcap::summarize(packet->data, packet->wire_length).empty());
      }
      std::uint32_t interface = 0;
      pcapng::parse_statistics(*block, &interface);
      FUZZ_CHECK(pcapng::parse_interface_name(*block).size() <= block->body.size());
    }
  }
  FUZZ_CHECK(reader.pending() <= stream.size());
  return 0;
}
