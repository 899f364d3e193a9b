#include "vxlan_config.hpp"

#include <arpa/inet.h>
#include <net/if.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "epair/ethernet.hpp"
#include "epair/words.hpp"

namespace epair::vxlan {

namespace {

Status bad(std::string message) { return {EINVAL, "vxlan: " + std::move(message)}; }

Result<std::uint64_t> number(std::string_view what, std::string_view text, std::uint64_t low, std::uint64_t high) {
  return parse_whole_number("vxlan: ", what, text, low, high);
}

}  // namespace

std::optional<Address> parse_address(std::string_view text) {
  Address address;
  address.text = std::string(text);
  if (::inet_pton(AF_INET, address.text.c_str(), &address.ip6) == 1) {
    address.family = AF_INET;
    return address;
  }
  if (::inet_pton(AF_INET6, address.text.c_str(), &address.ip6) == 1) {
    address.family = AF_INET6;
    return address;
  }
  return std::nullopt;
}

Result<Config> parse_config(std::string_view text) { return parse_config(split_words(text)); }

Result<Config> parse_config(std::span<const std::string_view> words) {
  Config config;
  std::vector<std::string_view> seen;
  for (std::size_t i = 0; i < words.size(); ++i) {
    const std::string_view word = words[i];
    static constexpr std::string_view kKnown[] = {"remote", "local", "vni", "dstport", "srcport", "ttl", "dev", "df"};
    if (std::find(std::begin(kKnown), std::end(kKnown), word) == std::end(kKnown)) {
      return bad("unknown setting '" + std::string(word) + "'");
    }
    if (std::find(seen.begin(), seen.end(), word) != seen.end()) return bad("'" + std::string(word) + "' given twice");
    seen.push_back(word);
    const std::size_t values = word == "srcport" ? 2 : 1;
    if (i + values >= words.size()) {
      return bad("'" + std::string(word) + "' needs " + (values == 2 ? "MIN and MAX" : "a value"));
    }
    const std::string_view value = words[++i];
    if (word == "remote" || word == "local") {
      auto address = parse_address(value);
      if (!address) return bad("invalid " + std::string(word) + " address '" + std::string(value) + "'");
      (word == "remote" ? config.remote : config.local.emplace()) = *address;
    } else if (word == "vni") {
      auto vni = number("vni", value, 0, kMaxVni);
      if (!vni) return vni.status();
      config.vni = static_cast<std::uint32_t>(*vni);
    } else if (word == "dstport") {
      auto port = number("dstport", value, 1, 65535);
      if (!port) return port.status();
      config.dstport = static_cast<std::uint16_t>(*port);
    } else if (word == "srcport") {
      auto low = number("srcport", value, 1, 65535);
      if (!low) return low.status();
      auto high = number("srcport", words[++i], 1, 65535);
      if (!high) return high.status();
      if (*high < *low) return bad("srcport range " + std::to_string(*low) + "-" + std::to_string(*high) + " is empty");
      config.srcport_min = static_cast<std::uint16_t>(*low);
      config.srcport_max = static_cast<std::uint16_t>(*high);
    } else if (word == "ttl") {
      auto ttl = number("ttl", value, 1, 255);
      if (!ttl) return ttl.status();
      config.ttl = static_cast<std::uint8_t>(*ttl);
    } else if (word == "df") {
      if (value != "set" && value != "unset") return bad("df is 'set' or 'unset', not '" + std::string(value) + "'");
      config.dont_fragment = value == "set";
    } else {
      if (value.empty() || value.size() >= IFNAMSIZ || value.find('/') != std::string_view::npos) {
        return bad("invalid dev '" + std::string(value) + "'");
      }
      config.dev = std::string(value);
    }
  }
  if (config.remote.family == AF_UNSPEC) return bad("needs 'remote ADDR'");
  if (config.local && config.local->family != config.remote.family) {
    return bad("local " + config.local->text + " and remote " + config.remote.text + " are not of one family");
  }
  return config;
}

std::string format_config(const Config& c) {
  std::string out = "remote " + c.remote.text;
  if (c.local) out += " local " + c.local->text;
  out += " vni " + std::to_string(c.vni) + " dstport " + std::to_string(c.dstport) + " srcport " +
         std::to_string(c.srcport_min) + " " + std::to_string(c.srcport_max);
  if (c.ttl != 0) out += " ttl " + std::to_string(c.ttl);
  if (!c.dev.empty()) out += " dev " + c.dev;
  if (!c.dont_fragment) out += " df unset";
  return out;
}

void write_header(std::uint8_t* out, std::uint32_t vni) {
  std::memset(out, 0, kHeaderSize);
  out[0] = 0x08;  // I: the VNI is valid
  out[4] = static_cast<std::uint8_t>(vni >> 16);
  out[5] = static_cast<std::uint8_t>(vni >> 8);
  out[6] = static_cast<std::uint8_t>(vni);
}

Drop check_datagram(std::span<const std::uint8_t> datagram, std::uint32_t vni) {
  if (datagram.size() < kHeaderSize + ethernet::kHeaderSize) return Drop::kShort;
  if ((datagram[0] & 0x08) == 0) return Drop::kFlags;
  const std::uint32_t got = ethernet::load_be32(&datagram[4]) >> 8;  // the VNI, then a reserved byte
  if (got != vni) return Drop::kOtherVni;
  // The inner source address must be a station's, not a group's.
  if ((datagram[kHeaderSize + 6] & 0x01) != 0) return Drop::kBadFrame;
  return Drop::kNone;
}

bool fill_offloaded_checksum(std::span<std::uint8_t> frame) {
  using namespace ethernet;
  // Not kHeaderSize: that is VXLAN's own, here.
  std::size_t ip = ethernet::kHeaderSize;
  if (frame.size() < ip) return false;
  std::uint16_t type = load_be16(&frame[kTypeOffset]);
  if ((type == kTypeVlan || type == kTypeQinQ) && frame.size() >= ip + 4) {
    type = load_be16(&frame[16]);
    ip += 4;
  }
  std::size_t l4 = 0;
  std::size_t l4_length = 0;
  std::uint8_t protocol = 0;
  std::uint64_t pseudo = 0;
  if (type == kTypeIpv4) {
    if (frame.size() < ip + 20 || (frame[ip] >> 4) != 4) return false;
    const std::size_t header = std::size_t{frame[ip] & 0x0fu} * 4;
    const std::size_t total = load_be16(&frame[ip + 2]);
    // A fragment's checksum covers the whole datagram: not ours to check.
    if (header < 20 || total < header || ip + total > frame.size() || (load_be16(&frame[ip + 6]) & 0x3fff) != 0) {
      return false;
    }
    protocol = frame[ip + 9];
    l4 = ip + header;
    l4_length = total - header;
    pseudo = add_words(frame.subspan(ip + 12, 8));
  } else if (type == kTypeIpv6) {
    if (frame.size() < ip + 40 || (frame[ip] >> 4) != 6) return false;
    const std::size_t payload = load_be16(&frame[ip + 4]);
    if (ip + 40 + payload > frame.size()) return false;
    protocol = frame[ip + 6];
    l4 = ip + 40;
    l4_length = payload;
    pseudo = add_words(frame.subspan(ip + 8, 32));
  } else {
    return false;
  }
  const std::size_t field = protocol == kProtoTcp ? 16 : protocol == kProtoUdp ? 6 : 0;
  if (field == 0 || l4_length < field + 2 || l4_length > 0xffff) return false;
  std::uint8_t* check = &frame[l4 + field];
  // Over IPv4 a UDP checksum of 0 means none was computed.
  if (protocol == kProtoUdp && type == kTypeIpv4 && load_be16(check) == 0) return false;
  const std::uint16_t seed = fold_sum(pseudo + protocol + l4_length);
  if (load_be16(check) != seed) return false;
  const std::uint16_t sum = fold_sum(add_words(frame.subspan(l4, l4_length)));
  if (fold_sum(std::uint32_t{sum} + seed) == 0xffff) return false;
  std::uint16_t value = static_cast<std::uint16_t>(~sum);
  if (protocol == kProtoUdp && value == 0) value = 0xffff;
  store_be16(check, value);
  return true;
}

}  // namespace epair::vxlan
