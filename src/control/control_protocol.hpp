// The control protocol's requests (docs/protocol.md), checked before anything
// acts on them: a request that passes parse_request() names a known op with
// only the fields that op takes, each of the right type and size.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "epair/status.hpp"

namespace epair::control {

using json = nlohmann::json;

inline constexpr int kProtocolVersion = 1;
/// The longest request line epaird reads; a longer one ends the connection.
inline constexpr std::size_t kMaxRequestBytes = 1 << 20;
/// The longest interface name (Linux's IFNAMSIZ less the NUL).
inline constexpr std::size_t kMaxInterfaceNameBytes = 15;
/// The longest field otherwise taken as a name, and the longest action value.
inline constexpr std::size_t kMaxNameBytes = 255;
inline constexpr std::size_t kMaxValueBytes = 255;
inline constexpr std::size_t kMaxActions = 64;
inline constexpr std::size_t kMaxCaptureInterfaces = 64;
inline constexpr std::size_t kMaxFilterBytes = 4096;

/// One setting of `epairctl NAME ...`, applied in order.
struct Action {
  std::string verb;   ///< up, down, mtu, ether, description, inet, inet6, vnet, -vnet, impair, destroy
  std::string value;  ///< the argument, empty for up/down/destroy
};

/// Checks a name as Linux checks device names (dev_valid_name(): 1 to 15
/// bytes, not "." or "..", no '/', ':' or white space) and refuses control
/// characters too: ENAMETOOLONG or EINVAL, the message naming it printably.
Status check_interface_name(std::string_view name);

/// A capability word of ifconfig's (txcsum, -txcsum, txcsum6, rxcsum,
/// rxcsum6, vlanhwtag, each with its '-' form): the capability bit
/// (FreeBSD's IFCAP_ value) and whether it turns it on.
struct CapabilityWord {
  std::uint32_t bit = 0;
  bool on = true;
};
std::optional<CapabilityWord> capability_word(std::string_view word);

/// Checks the value of an `attach` action: a kind (vxlan, memif) and its
/// settings. EINVAL with the settings parser's one line, or one naming the
/// kinds.
Status check_attach(std::string_view value);

/// text with control characters as \xNN, cut at 64 bytes: safe in one line.
std::string printable(std::string_view text);

/// Parses the "actions" array of a request; EINVAL for an unknown verb, a
/// missing value, a value over kMaxValueBytes or one with a control character.
Result<std::vector<Action>> parse_actions(const json& actions);

/// The fields of a capture request, checked; the filter is not compiled yet.
struct CaptureRequest {
  std::vector<std::string> interfaces;
  bool in = true;
  bool out = true;
  std::uint32_t snaplen = 262144;
  std::uint64_t count = 0;  ///< frames to deliver; 0 for no limit
  std::uint32_t buffer_kib = 4096;
  std::string filter;
};

/// apply: a boot configuration (rc.conf's words) to bring the pairs to.
struct ApplyRequest {
  std::string file;  ///< as the messages name it
  std::string text;
  bool dry_run = false;  ///< say what would be made, make nothing
};

struct Request {
  std::string op;
  std::string name;             ///< empty when not given
  std::string group;            ///< list: only its members; empty when not given
  std::vector<Action> actions;  ///< create and configure
  std::optional<CaptureRequest> capture;
  std::optional<ApplyRequest> apply;
  bool changes = false;  ///< create, configure, destroy, apply (but a dry run)
};

/// Checks one request line. EPROTO for what is not the protocol (bad JSON,
/// another version, an unknown op or field, a field of the wrong type),
/// EINVAL or ENAMETOOLONG for values out of range.
Result<Request> parse_request(std::string_view line);

json ok_response(json result);
json error_response(const Status& status);

}  // namespace epair::control
