#include "command_line.hpp"

#include <cstdlib>
#include <optional>
#include <set>

#include "control_protocol.hpp"

namespace epair::cli {

namespace {

Status usage(std::string message) { return {EINVAL, std::move(message)}; }

// The daemon's own check, so that a bad name never leaves epairctl.
Status check_name(const std::string& name) {
  if (Status s = control::check_interface_name(name); !s) return usage(s.message());
  return {};
}

}  // namespace

Result<json> parse_settings(std::span<const std::string> words) {
  static const std::set<std::string, std::less<>> kWithValue = {
      "mtu", "ether", "lladdr", "description", "descr", "name", "group", "-group", "inet", "inet6", "vnet", "-vnet"};
  json actions = json::array();
  for (std::size_t i = 0; i < words.size(); ++i) {
    const std::string& word = words[i];
    if (word == "up" || word == "down" || word == "destroy" || word == "detach" || control::capability_word(word)) {
      actions.push_back({{"action", word}});
    } else if (word == "-description" || word == "-descr") {
      actions.push_back({{"action", "description"}, {"value", ""}});
    } else if (kWithValue.contains(word)) {
      if (i + 1 >= words.size()) return usage("'" + word + "' needs a value");
      std::string verb = word == "descr" ? "description" : word == "lladdr" ? "ether" : word;
      const std::string& value = words[++i];
      // ifconfig's words after an address: alias adds it (as without),
      // -alias and delete remove it.
      if ((verb == "inet" || verb == "inet6") && i + 1 < words.size()) {
        const std::string& next = words[i + 1];
        if (next == "-alias" || next == "delete") verb.insert(0, "-");
        if (next == "alias" || next == "-alias" || next == "delete") ++i;
      }
      actions.push_back({{"action", verb}, {"value", value}});
    } else if (word == "impair") {
      // Takes the rest of the line, tc's words.
      std::string value;
      for (++i; i < words.size(); ++i) value += (value.empty() ? "" : " ") + words[i];
      if (value.empty()) return usage("'impair' needs settings (rate, delay, loss...) or 'clear'");
      actions.push_back({{"action", "impair"}, {"value", value}});
    } else if (word == "attach") {
      // Takes the rest of the line: the kind and its settings.
      std::string value;
      for (++i; i < words.size(); ++i) value += (value.empty() ? "" : " ") + words[i];
      actions.push_back({{"action", "attach"}, {"value", value}});
    } else if (word == "create") {
      return usage("'create' must follow the cloner name (epair or epairN)");
    } else if (word == "alias" || word == "-alias" || word == "delete") {
      return usage(
          std::string("'").append(word).append("' follows the address it applies to: inet ADDR ").append(word));
    } else {
      return usage("unknown setting '" + word + "'");
    }
  }
  if (auto checked = control::parse_actions(actions); !checked) return usage(checked.status().message());
  return actions;
}

namespace {

Status parse_capture(std::span<const std::string> words, CommandLine& line) {
  if (words.empty() || words[0].empty() || words[0][0] == '-') return usage("capture needs an interface");
  json interfaces = json::array();
  const std::string& list = words[0];
  for (std::size_t start = 0, comma; start <= list.size(); start = comma + 1) {
    comma = list.find(',', start);
    if (comma == std::string::npos) comma = list.size();
    if (comma == start) return usage("empty interface name in '" + list + "'");
    interfaces.push_back(list.substr(start, comma - start));
    if (Status s = check_name(interfaces.back()); !s) return s;
  }
  if (interfaces.size() > control::kMaxCaptureInterfaces) {
    return usage("capture takes at most " + std::to_string(control::kMaxCaptureInterfaces) + " interfaces");
  }
  json request = {{"v", 1}, {"op", "capture"}, {"interfaces", interfaces}};
  std::string filter;
  for (std::size_t i = 1; i < words.size(); ++i) {
    const std::string& word = words[i];
    const bool takes_value = word == "-i" || word == "-c" || word == "-s" || word == "-B" || word == "-w";
    if (takes_value && i + 1 >= words.size()) return usage("capture option " + word + " needs a value");
    std::uint64_t n = 0;
    if (word == "-i") {
      const std::string& direction = words[++i];
      if (direction != "both" && direction != "in" && direction != "out") {
        return usage("invalid direction '" + direction + "' (both, in or out)");
      }
      request["direction"] = direction;
    } else if (word == "-c") {
      if (!parse_number(words[++i], 1, UINT64_MAX, n)) return usage("invalid count '" + words[i] + "'");
      request["count"] = n;
    } else if (word == "-s") {
      if (!parse_number(words[++i], 1, 262144, n)) return usage("invalid snaplen '" + words[i] + "' (1..262144)");
      request["snaplen"] = n;
    } else if (word == "-B") {
      if (!parse_number(words[++i], 64, 1u << 20, n)) {
        return usage("invalid buffer '" + words[i] + "' (64..1048576 KiB)");
      }
      request["buffer_kib"] = n;
    } else if (word == "-w") {
      line.output = words[++i];
    } else if (word == "--") {
      for (++i; i < words.size(); ++i) filter += (filter.empty() ? "" : " ") + words[i];
    } else if (word.size() > 1 && word[0] == '-' && filter.empty()) {
      return usage("unknown capture option '" + word + "'");
    } else {
      filter += (filter.empty() ? "" : " ") + word;
    }
  }
  request["filter"] = filter;
  line.request = std::move(request);
  return {};
}

Status parse_stats(std::span<const std::string> words, CommandLine& line) {
  line.request = {{"v", 1}, {"op", "show"}};
  for (std::size_t i = 0; i < words.size(); ++i) {
    const std::string& word = words[i];
    if (word == "-w" || word == "-c") {
      if (i + 1 >= words.size()) return usage("stats option " + word + " needs a value");
      const std::string& value = words[++i];
      if (word == "-c") {
        if (!parse_number(value, 1, UINT64_MAX, line.count)) return usage("invalid count '" + value + "'");
        continue;
      }
      char* end = nullptr;
      line.interval = std::strtod(value.c_str(), &end);
      if (value.empty() || *end != '\0' || !(line.interval >= 0.1 && line.interval <= 3600)) {
        return usage("invalid interval '" + value + "' (0.1 to 3600 seconds)");
      }
    } else if (word.size() > 1 && word[0] == '-') {
      return usage("unknown stats option '" + word + "'");
    } else {
      if (Status s = check_name(word); !s) return s;
      line.names.push_back(word);
    }
  }
  return {};
}

}  // namespace

bool parse_number(const std::string& text, std::uint64_t low, std::uint64_t high, std::uint64_t& out) {
  if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos || text.size() > 19) return false;
  out = std::stoull(text);
  return out >= low && out <= high;
}

Result<CommandLine> parse_command_line(std::span<const std::string> args, std::string default_socket) {
  CommandLine line;
  line.socket = std::move(default_socket);
  bool all = false;
  bool list = false;
  bool cloners = false;
  std::optional<std::string> group;
  bool dry_run = false;
  std::size_t i = 0;
  for (; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "-h" || arg == "--help") {
      line.mode = Mode::kHelp;
      return line;
    }
    if (arg == "-s" || arg == "--socket") {
      if (i + 1 >= args.size()) return usage(arg + " needs a path");
      line.socket = args[++i];
    } else if (arg.starts_with("--socket=")) {
      line.socket = arg.substr(9);
    } else if (arg == "-j" || arg == "--json") {
      line.json_output = true;
    } else if (arg == "-v") {
      line.verbose = true;
    } else if (arg == "-a") {
      all = true;
    } else if (arg == "-l") {
      list = true;
    } else if (arg == "-C") {
      cloners = true;
    } else if (arg == "-f") {
      if (i + 1 >= args.size() || args[i + 1].empty()) return usage("-f needs a file (- for standard input)");
      line.config_file = args[++i];
    } else if (arg == "-n" || arg == "--dry-run") {
      dry_run = true;
    } else if (arg == "-g") {
      if (i + 1 >= args.size()) return usage("-g needs a group name");
      group = args[++i];
      if (group->empty()) return usage("-g needs a group name");
    } else if (arg.size() > 1 && arg[0] == '-' && arg != "-vnet") {
      return usage("unknown option '" + arg + "'");
    } else {
      break;
    }
  }
  const std::span<const std::string> words = args.subspan(i);
  const int modes = all + list + cloners + group.has_value() + !line.config_file.empty();
  if (modes > 1 || (modes == 1 && !words.empty())) return usage("-a, -l, -g, -f and -C take no interface");
  if (dry_run && line.config_file.empty()) return usage("--dry-run goes with -f FILE");
  if (modes == 0 && words.empty()) return usage("no interface given");
  if (!line.config_file.empty()) {
    line.mode = Mode::kApply;
    // The file's text goes in once epairctl has read it.
    line.request = {{"v", 1}, {"op", "apply"}, {"file", line.config_file}, {"text", ""}, {"dry_run", dry_run}};
    return line;
  }
  if (group) {
    line.mode = Mode::kGroup;
    line.request = {{"v", 1}, {"op", "list"}, {"group", *group}};
    return line;
  }
  if (cloners || list) {
    line.mode = cloners ? Mode::kCloners : Mode::kList;
    line.request = {{"v", 1}, {"op", cloners ? "cloners" : "list"}};
    return line;
  }
  if (all) {
    line.mode = Mode::kAll;
    line.request = {{"v", 1}, {"op", "show"}};
    return line;
  }
  if (words[0] == "capture") {
    line.mode = Mode::kCapture;
    if (Status s = parse_capture(words.subspan(1), line); !s) return s;
    return line;
  }
  if (words[0] == "stats") {
    line.mode = Mode::kStats;
    if (Status s = parse_stats(words.subspan(1), line); !s) return s;
    return line;
  }
  const std::string& name = words[0];
  if (Status s = check_name(name); !s) return s;
  if (words.size() == 1) {
    line.mode = Mode::kShow;
    line.request = {{"v", 1}, {"op", "show"}, {"name", name}};
    return line;
  }
  const bool create = words[1] == "create";
  auto actions = parse_settings(words.subspan(create ? 2 : 1));
  if (!actions) return actions.status();
  line.mode = create ? Mode::kCreate : Mode::kConfigure;
  line.request = {{"v", 1}, {"op", create ? "create" : "configure"}, {"name", name}, {"actions", *actions}};
  return line;
}

}  // namespace epair::cli
