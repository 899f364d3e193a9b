#include "epair/flow_hash.hpp"

#include <cstring>

#include "epair/ethernet.hpp"
#include "epair/mac.hpp"

namespace epair {

namespace {

using namespace ethernet;

std::uint32_t read32(const std::uint8_t* p) {
  std::uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

bool has_ports(std::uint8_t proto) {
  return proto == kProtoTcp || proto == kProtoUdp || proto == kProtoSctp || proto == kProtoUdpLite;
}

}  // namespace

std::optional<std::uint32_t> flow_hash(std::span<const std::uint8_t> frame) {
  const std::uint8_t* p = frame.data();
  std::size_t size = frame.size();
  std::size_t offset = kTypeOffset;
  if (size < offset + 2) return std::nullopt;
  std::uint16_t type = load_be16(p + offset);
  for (int tags = 0; (type == kTypeVlan || type == kTypeQinQ) && tags < 2; ++tags) {
    offset += 4;
    if (size < offset + 2) return std::nullopt;
    type = load_be16(p + offset);
  }
  offset += 2;

  // key: addresses (up to 8 words), protocol, ports.
  std::uint32_t key[10];
  std::size_t words = 0;
  std::uint8_t proto;
  std::size_t l4;
  bool first_fragment = true;
  if (type == kTypeIpv4) {
    if (size < offset + 20) return std::nullopt;
    const std::uint8_t* ip = p + offset;
    const std::size_t header = static_cast<std::size_t>(ip[0] & 0x0f) * 4;
    if ((ip[0] >> 4) != 4 || header < 20 || size < offset + header) return std::nullopt;
    proto = ip[9];
    first_fragment = (load_be16(ip + 6) & 0x1fff) == 0;
    key[words++] = read32(ip + 12);
    key[words++] = read32(ip + 16);
    l4 = offset + header;
  } else if (type == kTypeIpv6) {
    if (size < offset + 40) return std::nullopt;
    const std::uint8_t* ip = p + offset;
    if ((ip[0] >> 4) != 6) return std::nullopt;
    proto = ip[6];
    for (std::size_t i = 0; i < 8; ++i) key[words++] = read32(ip + 8 + 4 * i);
    l4 = offset + 40;
  } else {
    return std::nullopt;
  }
  key[words++] = proto;
  if (first_fragment && has_ports(proto) && size >= l4 + 4) key[words++] = read32(p + l4);
  return jenkins_hash32(key, words, 0);
}

}  // namespace epair
