#include "boot_config.hpp"

#include <algorithm>
#include <cctype>
#include <map>
#include <optional>
#include <regex>
#include <sstream>

#include "command_line.hpp"
#include "control_protocol.hpp"

namespace epair::daemon {

namespace {

struct Assignment {
  std::string value;
  int line = 0;
};

bool is_name_start(char c) { return std::isalpha(static_cast<unsigned char>(c)) != 0 || c == '_'; }
bool is_name_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_'; }
bool is_blank(char c) { return c == ' ' || c == '\t'; }

// The value after NAME=, as a shell reads it, or why not.
std::optional<std::string> read_value(std::string_view text, std::string& why) {
  std::string value;
  std::size_t i = 0;
  while (i < text.size() && !is_blank(text[i])) {
    const char c = text[i++];
    if (c == '\'') {
      const std::size_t close = text.find('\'', i);
      if (close == std::string_view::npos) {
        why = "a quote (') is not closed on its line";
        return std::nullopt;
      }
      value.append(text.substr(i, close - i));
      i = close + 1;
    } else if (c == '"') {
      for (;; ++i) {
        if (i >= text.size()) {
          why = "a quote (\") is not closed on its line";
          return std::nullopt;
        }
        if (text[i] == '"') break;
        if (text[i] == '$' || text[i] == '`') {
          why = "a shell expansion ($, `) is not taken here; write the value itself";
          return std::nullopt;
        }
        if (text[i] == '\\' && i + 1 < text.size()) ++i;
        value += text[i];
      }
      ++i;
    } else if (c == '$' || c == '`') {
      why = "a shell expansion ($, `) is not taken here; write the value itself";
      return std::nullopt;
    } else if (c == '\\' && i < text.size()) {
      value += text[i++];
    } else {
      value += c;
    }
  }
  while (i < text.size() && is_blank(text[i])) ++i;
  if (i < text.size() && text[i] != '#') {
    why = "more after the value; quote a value with spaces";
    return std::nullopt;
  }
  return value;
}

std::vector<std::string> split_words(const std::string& value) {
  std::istringstream in(value);
  std::vector<std::string> words;
  for (std::string word; in >> word;) words.push_back(word);
  return words;
}

}  // namespace

// Reading, in this order:
// 1. Each line is an assignment, a comment or blank; the last assignment
//    of a variable wins, as in a shell.
// 2. cloned_interfaces names the pairs.
// 3. The other variables are read as settings of a pair's creation or of
//    an end, in epairctl's words.
// 4. Each pair's settings are put in the order they apply; an end with any
//    is brought UP after them.
BootConfig parse_boot_config(std::string_view text, const std::string& file) {
  BootConfig config;
  config.file = file;
  std::vector<std::pair<int, std::string>> errors;
  const auto error = [&](int line, const std::string& why) { errors.emplace_back(line, why); };

  std::map<std::string, Assignment> assigned;
  int number = 0;
  for (std::size_t start = 0; start <= text.size();) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    start = end + 1;
    ++number;
    while (!line.empty() && is_blank(line.front())) line.remove_prefix(1);
    if (line.empty() || line.front() == '#') continue;
    std::size_t n = 0;
    if (!is_name_start(line[0])) {
      error(number, "not an assignment (NAME=value)");
      continue;
    }
    while (n < line.size() && is_name_char(line[n])) ++n;
    if (n >= line.size() || line[n] != '=') {
      error(number, "not an assignment (NAME=value)");
      continue;
    }
    std::string why;
    auto value = read_value(line.substr(n + 1), why);
    if (!value) {
      error(number, std::string(line.substr(0, n)) + ": " + why);
      continue;
    }
    assigned[std::string(line.substr(0, n))] = {*value, number};
  }

  static const std::regex kPair("epair[0-9]+");
  std::map<std::string, std::size_t> pairs;
  if (auto it = assigned.find("cloned_interfaces"); it != assigned.end()) {
    for (const std::string& word : split_words(it->second.value)) {
      if (word == "epair") {
        error(it->second.line, "cloned_interfaces: 'epair' needs a unit (epair0), so that ifconfig_ can name its ends");
      } else if (!std::regex_match(word, kPair)) {
        error(it->second.line, "cloned_interfaces: '" + word + "' is not an epair (epairN)");
      } else if (pairs.contains(word)) {
        error(it->second.line, "cloned_interfaces: " + word + " is named twice");
      } else {
        pairs[word] = config.pairs.size();
        config.pairs.push_back({word, it->second.line, {}});
      }
    }
  }

  // ifconfig_<end>_name renames an end; the other variables may name it by
  // its new name then, as rc.conf does (with the characters a variable's
  // name cannot hold as _).
  static const std::regex kRename("ifconfig_(epair[0-9]+[ab])_name");
  std::map<std::string, std::string> new_names;  // end: its new name
  std::map<std::string, std::string> renamed;    // the new name, as a variable has it: the end
  for (const auto& [variable, assignment] : assigned) {
    std::smatch match;
    if (!std::regex_match(variable, match, kRename)) continue;
    const std::string end = match[1];
    if (Status s = control::check_interface_name(assignment.value); !s) {
      error(assignment.line, variable + ": " + s.message());
      continue;
    }
    std::string as_variable = assignment.value;
    std::ranges::replace_if(
        as_variable, [](char c) { return !is_name_char(c); }, '_');
    if (renamed.contains(as_variable)) {
      error(assignment.line, variable + ": another end is renamed " + assignment.value + " too");
      continue;
    }
    new_names[end] = assignment.value;
    renamed[as_variable] = end;
  }

  // By pair, the settings with the key they sort by: creation, then side
  // a's and side b's, each as _name, ifconfig_, _aliasN by N, _ipv6, _descr.
  std::map<std::string, std::vector<std::pair<std::tuple<int, int, long>, BootSettings>>> found;
  static const std::regex kEnd("ifconfig_([A-Za-z0-9_]+?)(_alias([0-9]{1,6})|_ipv6|_descr|_name)?");
  static const std::regex kCreate("create_args_(epair[0-9]+)");
  static const std::regex kEndName("epair[0-9]+[ab]");
  for (const auto& [variable, assignment] : assigned) {
    if (variable == "cloned_interfaces") continue;
    std::smatch match;
    std::string end;
    std::tuple<int, int, long> key;
    std::string suffix;
    if (std::regex_match(variable, match, kCreate)) {
      end = match[1].str() + "a";
      key = {0, 0, 0};
    } else if (std::regex_match(variable, match, kEnd)) {
      const std::string id = match[1];
      suffix = match[2];
      if (std::regex_match(id, kEndName)) {
        end = id;
      } else if (auto it = renamed.find(id); it != renamed.end() && suffix != "_name") {
        end = it->second;
      } else {
        error(assignment.line,
              variable + ": not an end of an epair (ifconfig_epairNa, ifconfig_epairNb, or the new name of one)");
        continue;
      }
      const int kind = suffix == "_name" ? -1 : suffix.empty() ? 0 : suffix == "_ipv6" ? 2 : suffix == "_descr" ? 3 : 1;
      key = {end.back() == 'a' ? 1 : 2, kind, kind == 1 ? std::stol(match[3]) : 0};
    } else {
      error(assignment.line,
            variable + ": not a variable epair reads (cloned_interfaces, create_args_epairN, ifconfig_epairN[ab])");
      continue;
    }
    const std::string pair = end.substr(0, end.size() - 1);
    if (!pairs.contains(pair)) {
      error(assignment.line, std::string(variable).append(": ").append(pair).append(" is not in cloned_interfaces"));
      continue;
    }
    if (suffix == "_name") {
      if (new_names.contains(end)) {
        found[pair].push_back(
            {key, {variable, assignment.line, end, json::array({{{"action", "name"}, {"value", new_names[end]}}})}});
      }
      continue;
    }
    // A description is the whole value; the rest is words, as the shell
    // splits an unquoted $ifconfig_args.
    const std::vector<std::string> words =
        suffix == "_descr" ? std::vector<std::string>{"description", assignment.value} : split_words(assignment.value);
    auto actions = cli::parse_settings(words);
    if (!actions) {
      error(assignment.line, variable + ": " + actions.status().message());
      continue;
    }
    if (std::ranges::any_of(*actions,
                            [](const json& a) { return a["action"] == "destroy" || a["action"] == "name"; })) {
      error(assignment.line, std::string(variable)
                                 .append(": destroy and name have no place here (ifconfig_")
                                 .append(end)
                                 .append("_name renames)"));
      continue;
    }
    found[pair].push_back({key, {variable, assignment.line, end, std::move(*actions)}});
  }

  // An end's settings after its rename name it by its new name; an end
  // with settings is brought UP after them.
  for (BootPair& pair : config.pairs) {
    auto& settings = found[pair.name];
    std::ranges::sort(settings, [](const auto& x, const auto& y) { return x.first < y.first; });
    for (const int side : {1, 2}) {
      BootSettings* last = nullptr;
      bool down = false;
      for (auto& [key, one] : settings) {
        if (std::get<0>(key) != side) continue;
        if (auto it = new_names.find(one.end); it != new_names.end() && std::get<1>(key) >= 0) one.end = it->second;
        if (std::get<1>(key) < 0) continue;
        last = &one;
        down = down || std::ranges::any_of(one.actions, [](const json& a) { return a["action"] == "down"; });
      }
      if (last != nullptr && !down) last->actions.push_back({{"action", "up"}});
    }
    for (auto& [key, one] : settings) pair.settings.push_back(std::move(one));
  }
  std::ranges::stable_sort(errors, {}, &std::pair<int, std::string>::first);
  for (const auto& [line, why] : errors) {
    config.errors.push_back(std::string(file).append(":").append(std::to_string(line)).append(": ").append(why));
  }
  return config;
}

}  // namespace epair::daemon
