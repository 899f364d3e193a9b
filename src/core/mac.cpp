#include "epair/mac.hpp"

#include <cstdio>
#include <fstream>

namespace epair {

std::optional<MacAddress> MacAddress::parse(std::string_view text) {
  MacAddress mac;
  std::size_t pos = 0;
  for (std::size_t i = 0; i < mac.bytes.size(); ++i) {
    if (i > 0) {
      if (pos >= text.size() || (text[pos] != ':' && text[pos] != '-')) return std::nullopt;
      ++pos;
    }
    unsigned value = 0;
    std::size_t digits = 0;
    while (pos < text.size() && digits < 2) {
      const char c = text[pos];
      unsigned nibble;
      if (c >= '0' && c <= '9') {
        nibble = static_cast<unsigned>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        nibble = static_cast<unsigned>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        nibble = static_cast<unsigned>(c - 'A' + 10);
      } else {
        break;
      }
      value = value * 16 + nibble;
      ++digits;
      ++pos;
    }
    if (digits == 0) return std::nullopt;
    mac.bytes[i] = static_cast<std::uint8_t>(value);
  }
  if (pos != text.size()) return std::nullopt;
  return mac;
}

std::string MacAddress::to_string() const {
  char text[18];
  std::snprintf(text, sizeof text, "%02x:%02x:%02x:%02x:%02x:%02x", bytes[0], bytes[1], bytes[2], bytes[3], bytes[4],
                bytes[5]);
  return text;
}

bool MacAddress::is_broadcast() const {
  for (auto b : bytes)
    if (b != 0xff) return false;
  return true;
}

bool MacAddress::is_zero() const {
  for (auto b : bytes)
    if (b != 0) return false;
  return true;
}

namespace {
constexpr std::uint32_t rot(std::uint32_t x, int k) { return (x << k) | (x >> (32 - k)); }

// clang-format off: the shape of lookup3.c, to compare line by line.
void mix(std::uint32_t& a, std::uint32_t& b, std::uint32_t& c) {
  a -= c;
  a ^= rot(c, 4);
  c += b;
  b -= a;
  b ^= rot(a, 6);
  a += c;
  c -= b;
  c ^= rot(b, 8);
  b += a;
  a -= c;
  a ^= rot(c, 16);
  c += b;
  b -= a;
  b ^= rot(a, 19);
  a += c;
  c -= b;
  c ^= rot(b, 4);
  b += a;
}

void final_mix(std::uint32_t& a, std::uint32_t& b, std::uint32_t& c) {
  c ^= b;
  c -= rot(b, 14);
  a ^= c;
  a -= rot(c, 11);
  b ^= a;
  b -= rot(a, 25);
  c ^= b;
  c -= rot(b, 16);
  a ^= c;
  a -= rot(c, 4);
  b ^= a;
  b -= rot(a, 14);
  c ^= b;
  c -= rot(b, 24);
}
// clang-format on
}  // namespace

std::uint32_t jenkins_hash32(const std::uint32_t* key, std::size_t count, std::uint32_t initval) {
  std::uint32_t a = 0xdeadbeef + (static_cast<std::uint32_t>(count) << 2) + initval;
  std::uint32_t b = a;
  std::uint32_t c = a;
  while (count > 3) {
    a += key[0];
    b += key[1];
    c += key[2];
    mix(a, b, c);
    count -= 3;
    key += 3;
  }
  switch (count) {
    case 3:
      c += key[2];
      [[fallthrough]];
    case 2:
      b += key[1];
      [[fallthrough]];
    case 1:
      a += key[0];
      final_mix(a, b, c);
      break;
    default:
      break;
  }
  return c;
}

MacAddress legacy_mac(std::uint32_t index, std::uint64_t host_id) {
  const std::uint32_t key[3] = {index, static_cast<std::uint32_t>(host_id & 0xffffffff),
                                static_cast<std::uint32_t>(host_id >> 32)};
  const std::uint32_t hash = jenkins_hash32(key, 3, 0);
  MacAddress mac;
  mac.bytes[0] = 0x02;
  // FreeBSD memcpy()s the hash: its bytes in little-endian order.
  for (int i = 0; i < 4; ++i) mac.bytes[1 + i] = static_cast<std::uint8_t>(hash >> (8 * i));
  mac.bytes[5] = 0x0a;
  return mac;
}

MacAddress stable_mac(std::string_view name, std::uint64_t host_id) {
  // Two seeds of lookup3 over {host id, name} give the 40 bits after the prefix.
  std::uint32_t key[2 + 4] = {static_cast<std::uint32_t>(host_id & 0xffffffff),
                              static_cast<std::uint32_t>(host_id >> 32)};
  std::size_t words = 2;
  for (std::size_t i = 0; i < name.size() && i < 16; ++i) {
    key[2 + i / 4] |= static_cast<std::uint32_t>(static_cast<unsigned char>(name[i])) << (8 * (i % 4));
    words = 2 + i / 4 + 1;
  }
  const std::uint32_t low = jenkins_hash32(key, words, 0x65706169);   // "epai"
  const std::uint32_t high = jenkins_hash32(key, words, 0x72737462);  // "rstb"
  MacAddress mac;
  mac.bytes[0] = 0x06;
  mac.bytes[1] = static_cast<std::uint8_t>(high);
  for (int i = 0; i < 4; ++i) mac.bytes[2 + i] = static_cast<std::uint8_t>(low >> (8 * i));
  return mac;
}

std::uint64_t system_host_id() {
  std::ifstream in("/etc/machine-id");
  std::string hex;
  if (!(in >> hex) || hex.size() < 16) return 0;
  std::uint64_t id = 0;
  for (std::size_t i = 0; i < 16; ++i) {
    const char c = hex[i];
    const int nibble = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
    if (nibble < 0) return 0;
    id = (id << 4) | static_cast<std::uint64_t>(nibble);
  }
  return id;
}

}  // namespace epair
