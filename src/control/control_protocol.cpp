#include "control_protocol.hpp"

#include <algorithm>
#include <map>
#include <set>

#include "epair/impairment.hpp"
#include "epair/interface.hpp"
#include "memif_protocol.hpp"
#include "vxlan_config.hpp"

namespace epair::control {

namespace {

const std::set<std::string, std::less<>> kVerbsWithValue = {"mtu",    "ether", "description", "name",  "group",
                                                            "-group", "inet",  "inet6",       "-inet", "-inet6",
                                                            "vnet",   "-vnet", "impair",      "attach"};
const std::set<std::string, std::less<>> kVerbsAlone = {"up", "down", "destroy", "detach"};

// The fields each op takes besides "v" and "op".
const std::map<std::string, std::set<std::string, std::less<>>, std::less<>> kOps = {
    {"version", {}},
    {"cloners", {}},
    {"list", {"group"}},
    {"show", {"name"}},
    {"create", {"name", "actions"}},
    {"configure", {"name", "actions"}},
    {"destroy", {"name"}},
    {"capture", {"interfaces", "direction", "snaplen", "count", "buffer_kib", "filter"}},
    {"apply", {"file", "text", "dry_run"}},
};

const char* errno_name(int e) {
  switch (e) {
    case EEXIST:
      return "EEXIST";
    case ENXIO:
      return "ENXIO";
    case ENOENT:
      return "ENOENT";
    case EINVAL:
      return "EINVAL";
    case ENOSPC:
      return "ENOSPC";
    case EROFS:
      return "EROFS";
    case EBUSY:
      return "EBUSY";
    case EPERM:
      return "EPERM";
    case EACCES:
      return "EACCES";
    case E2BIG:
      return "E2BIG";
    case ENODEV:
      return "ENODEV";
    case ENAMETOOLONG:
      return "ENAMETOOLONG";
    case EADDRNOTAVAIL:
      return "EADDRNOTAVAIL";
    case EPROTO:
      return "EPROTO";
    default:
      return "EIO";
  }
}

Result<std::uint64_t> number(const json& request, const char* key, std::uint64_t fallback, std::uint64_t low,
                             std::uint64_t high) {
  auto it = request.find(key);
  if (it == request.end()) return fallback;
  if (!it->is_number_unsigned() || it->get<std::uint64_t>() < low || it->get<std::uint64_t>() > high) {
    return Status{EINVAL, std::string("capture: ") + key + " must be from " + std::to_string(low) + " to " +
                              std::to_string(high)};
  }
  return it->get<std::uint64_t>();
}

Result<CaptureRequest> parse_capture(const json& request) {
  CaptureRequest capture;
  auto names = request.find("interfaces");
  if (names == request.end() || !names->is_array() || names->empty() || names->size() > kMaxCaptureInterfaces) {
    return Status{EPROTO, "capture needs \"interfaces\": an array of 1 to 64 names"};
  }
  for (const json& name : *names) {
    if (!name.is_string() || name.get_ref<const std::string&>().empty()) {
      return Status{EPROTO, "capture: each interface must be a name"};
    }
    if (Status s = check_interface_name(name.get_ref<const std::string&>()); !s) return s;
    capture.interfaces.push_back(name.get<std::string>());
  }
  auto snaplen = number(request, "snaplen", capture.snaplen, 1, 262144);
  if (!snaplen) return snaplen.status();
  auto count = number(request, "count", 0, 0, UINT64_MAX);
  if (!count) return count.status();
  auto buffer = number(request, "buffer_kib", capture.buffer_kib, 64, 1u << 20);
  if (!buffer) return buffer.status();
  capture.snaplen = static_cast<std::uint32_t>(*snaplen);
  capture.count = *count;
  capture.buffer_kib = static_cast<std::uint32_t>(*buffer);
  if (auto it = request.find("direction"); it != request.end()) {
    const std::string direction = it->is_string() ? it->get<std::string>() : "";
    if (direction != "both" && direction != "in" && direction != "out") {
      return Status{EINVAL, "capture: direction must be both, in or out"};
    }
    capture.in = direction != "out";
    capture.out = direction != "in";
  }
  if (auto it = request.find("filter"); it != request.end()) {
    if (!it->is_string()) return Status{EPROTO, "capture: \"filter\" must be a string"};
    if (it->get_ref<const std::string&>().size() > kMaxFilterBytes) {
      return Status{E2BIG, "capture: filter longer than " + std::to_string(kMaxFilterBytes) + " bytes"};
    }
    capture.filter = it->get<std::string>();
  }
  return capture;
}

bool has_control(std::string_view text) {
  return std::any_of(text.begin(), text.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
}

}  // namespace

std::string printable(std::string_view text) {
  std::string out;
  // Cut at 64 bytes, but not inside a UTF-8 sequence: the line goes into
  // JSON, which must stay valid UTF-8.
  std::size_t cut = std::min<std::size_t>(text.size(), 64);
  while (cut < text.size() && cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xc0) == 0x80) --cut;
  for (char c : text.substr(0, cut)) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 15];
    } else {
      out += c;
    }
  }
  if (text.size() > cut) out += "...";
  return out;
}

Status check_attach(std::string_view value) {
  if (vxlan::is_vxlan_attach(value)) return vxlan::parse_config(value.substr(5)).status();
  if (memif::is_memif_attach(value)) return memif::parse_config(value.substr(5)).status();
  return Status{EINVAL, "'attach' needs a kind: attach vxlan remote ADDR ... or attach memif socket PATH ..."};
}

std::optional<CapabilityWord> capability_word(std::string_view word) {
  static constexpr std::pair<std::string_view, std::uint32_t> kWords[] = {{"txcsum", kCapTxCsum},
                                                                          {"txcsum6", kCapTxCsumIpv6},
                                                                          {"rxcsum", kCapRxCsum},
                                                                          {"rxcsum6", kCapRxCsumIpv6},
                                                                          {"vlanhwtag", kCapVlanHwTagging}};
  const bool on = !word.starts_with('-');
  if (!on) word.remove_prefix(1);
  for (const auto& [name, bit] : kWords) {
    if (word == name) return CapabilityWord{bit, on};
  }
  return std::nullopt;
}

Status check_interface_name(std::string_view name) {
  const bool bad = name.empty() || name == "." || name == ".." || has_control(name) ||
                   name.find_first_of("/: \t\n\v\f\r") != std::string_view::npos;
  if (bad) return {EINVAL, "invalid interface name '" + printable(name) + "'"};
  if (name.size() > kMaxInterfaceNameBytes) return {ENAMETOOLONG, "interface name too long: '" + printable(name) + "'"};
  return {};
}

Result<std::vector<Action>> parse_actions(const json& actions) {
  std::vector<Action> result;
  if (actions.is_null()) return result;
  if (!actions.is_array()) return Status{EINVAL, "\"actions\" must be an array"};
  if (actions.size() > kMaxActions) return Status{E2BIG, "more than 64 actions"};
  for (const json& item : actions) {
    if (!item.is_object() || !item.contains("action") || !item["action"].is_string()) {
      return Status{EINVAL, "each action must be an object with an \"action\" string"};
    }
    for (const auto& [key, value] : item.items()) {
      if (key != "action" && key != "value")
        return Status{EPROTO, "unknown field '" + printable(key) + "' in an action"};
    }
    Action action{item["action"].get<std::string>(), {}};
    if (kVerbsWithValue.contains(action.verb)) {
      const json& value = item.value("value", json());
      if (value.is_string()) {
        action.value = value.get<std::string>();
      } else if (value.is_number_unsigned()) {
        action.value = std::to_string(value.get<std::uint64_t>());
      } else if (value.is_number_integer()) {
        // Judged by the verb (an MTU says its range), not refused here.
        action.value = std::to_string(value.get<std::int64_t>());
      } else {
        return Status{EINVAL, "action " + action.verb + " needs a value"};
      }
      if (action.value.size() > kMaxValueBytes) {
        return Status{ENAMETOOLONG,
                      "value of " + action.verb + " longer than " + std::to_string(kMaxValueBytes) + " bytes"};
      }
      if (has_control(action.value)) {
        return Status{EINVAL,
                      "value of " + action.verb + " has a control character: '" + printable(action.value) + "'"};
      }
      // Checked whole before any action runs: a bad impairment changes
      // nothing, not even the actions before it.
      if (action.verb == "impair" && !is_impairment_clear(action.value)) {
        if (auto config = parse_impairment(action.value); !config) return config.status();
      }
      if (action.verb == "attach") {
        if (Status s = check_attach(action.value); !s) return s;
      }
      if (action.verb == "name") {
        if (Status s = check_interface_name(action.value); !s) return s;
      }
    } else if (!kVerbsAlone.contains(action.verb) && !capability_word(action.verb)) {
      return Status{EINVAL, "unknown action '" + printable(action.verb) + "'"};
    } else if (item.contains("value")) {
      return Status{EINVAL, "action " + action.verb + " takes no value"};
    }
    result.push_back(std::move(action));
  }
  return result;
}

Result<Request> parse_request(std::string_view line) {
  if (line.size() > kMaxRequestBytes) return Status{E2BIG, "request longer than 1 MiB"};
  json request;
  try {
    request = json::parse(line);
  } catch (const json::exception&) {
    return Status{EPROTO, "request is not valid JSON"};
  }
  if (!request.is_object()) return Status{EPROTO, "request must be a JSON object"};
  if (auto v = request.find("v"); v != request.end() && !(v->is_number_integer() && *v == kProtocolVersion)) {
    return Status{EPROTO, "unsupported protocol version (epaird speaks " + std::to_string(kProtocolVersion) + ")"};
  }
  auto op_value = request.find("op");
  if (op_value == request.end() || !op_value->is_string()) return Status{EPROTO, "request needs an \"op\" string"};
  Request parsed;
  parsed.op = op_value->get<std::string>();
  auto op = kOps.find(parsed.op);
  if (op == kOps.end()) return Status{EPROTO, "unknown op '" + printable(parsed.op) + "'"};
  for (const auto& [key, value] : request.items()) {
    if (key != "v" && key != "op" && !op->second.contains(key)) {
      return Status{EPROTO, "unknown field '" + printable(key) + "' for op " + parsed.op};
    }
  }
  parsed.changes = parsed.op == "create" || parsed.op == "configure" || parsed.op == "destroy";
  if (parsed.op == "apply") {
    auto text = request.find("text");
    if (text == request.end() || !text->is_string()) return Status{EPROTO, "op apply needs a \"text\" string"};
    auto file = request.find("file");
    if (file != request.end() && !file->is_string()) return Status{EPROTO, "\"file\" must be a string"};
    auto dry_run = request.find("dry_run");
    if (dry_run != request.end() && !dry_run->is_boolean()) return Status{EPROTO, "\"dry_run\" must be a boolean"};
    parsed.apply = ApplyRequest{file != request.end() ? file->get<std::string>() : "-", text->get<std::string>(),
                                dry_run != request.end() && dry_run->get<bool>()};
    parsed.changes = !parsed.apply->dry_run;
    return parsed;
  }
  if (parsed.op == "capture") {
    auto capture = parse_capture(request);
    if (!capture) return capture.status();
    parsed.capture = std::move(*capture);
    return parsed;
  }
  if (auto group = request.find("group"); group != request.end()) {
    if (!group->is_string()) return Status{EPROTO, "\"group\" must be a string"};
    parsed.group = group->get<std::string>();
  }
  if (auto name = request.find("name"); name != request.end()) {
    if (!name->is_string()) return Status{EPROTO, "\"name\" must be a string"};
    parsed.name = name->get<std::string>();
    if (parsed.changes && parsed.name.empty()) return Status{EPROTO, "op " + parsed.op + " needs a \"name\""};
    if (Status s = check_interface_name(parsed.name); !s) return s;
  }
  if (parsed.changes && parsed.name.empty()) return Status{EPROTO, "op " + parsed.op + " needs a \"name\""};
  if (auto actions = request.find("actions"); actions != request.end()) {
    auto checked = parse_actions(*actions);
    if (!checked) return checked.status();
    parsed.actions = std::move(*checked);
  }
  return parsed;
}

json ok_response(json result) { return {{"v", kProtocolVersion}, {"ok", true}, {"result", std::move(result)}}; }

json error_response(const Status& status) {
  return {{"v", kProtocolVersion},
          {"ok", false},
          {"error", {{"errno", status.value()}, {"code", errno_name(status.value())}, {"message", status.message()}}}};
}

}  // namespace epair::control
