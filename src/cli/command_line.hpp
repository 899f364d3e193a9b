// epairctl's grammar: the words of its command line turned into what to ask
// epaird, without talking to it. Kept apart from the program so that it can
// be tested and fuzzed on its own.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "epair/status.hpp"

namespace epair::cli {

using json = nlohmann::json;

enum class Mode { kHelp, kCloners, kList, kGroup, kApply, kAll, kShow, kCreate, kConfigure, kStats, kCapture };

// clang-tidy 14 cannot see that nlohmann::json's move constructor, noexcept
// itself, throws nothing, and flags the implicit one of this struct.
struct CommandLine {  // NOLINT(bugprone-exception-escape)
  Mode mode = Mode::kShow;
  std::string socket;
  bool json_output = false;
  bool verbose = false;
  /// The request for epaird; for stats, the `show` each sample sends.
  json request;
  /// -f: the boot configuration to apply ("-" for stdin); its text goes
  /// into the request once read.
  std::string config_file;
  /// capture -w: where the pcapng goes ("-" for stdout).
  std::optional<std::string> output;
  /// stats: -w, -c and the ends named (none: every end).
  double interval = 1.0;
  std::uint64_t count = 0;
  std::vector<std::string> names;
};

/// Parses the arguments after the program name. A usage error is EINVAL with
/// the one line to print; default_socket is used unless -s is given.
Result<CommandLine> parse_command_line(std::span<const std::string> args, std::string default_socket);

/// The settings after an interface name (`up inet 10.0.0.1/24 ...`) as
/// protocol actions, checked as epaird checks them
/// (control::parse_actions: values, impairments, attachments) so that a
/// bad one never leaves epairctl; EINVAL with the one line to print.
Result<json> parse_settings(std::span<const std::string> words);

/// Digits only, within [low, high].
bool parse_number(const std::string& text, std::uint64_t low, std::uint64_t high, std::uint64_t& out);

}  // namespace epair::cli
