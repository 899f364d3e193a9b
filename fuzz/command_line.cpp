// Fuzzes epairctl's grammar: the input is its arguments, separated by NUL
// bytes. Whatever the grammar accepts must be a request epaird's check does
// not refuse as outside the protocol (EPROTO): the two sides agree.
#include "command_line.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "control_protocol.hpp"
#include "fuzz_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::vector<std::string> args;
  std::string word;
  for (std::size_t i = 0; i < size && args.size() < 64; ++i) {
    if (data[i] == 0) {
      args.push_back(std::move(word));
      word.clear();
    } else {
      word += static_cast<char>(data[i]);
    }
  }
  if (args.size() < 64) args.push_back(std::move(word));

  auto line = epair::cli::parse_command_line(args, "/run/epair/epaird.sock");
  if (!line) {
    FUZZ_CHECK(line.status().value() == EINVAL && !line.status().message().empty());
    return 0;
  }
  if (line->mode == epair::cli::Mode::kHelp) return 0;
  FUZZ_CHECK(line->request.is_object());
  std::string text;
  try {
    text = line->request.dump();
  } catch (const nlohmann::json::exception&) {
    // Arguments that are not UTF-8 cannot go into a JSON request; epairctl
    // reports that as an error. Nothing more to check.
    return 0;
  }
  auto request = epair::control::parse_request(text);
  FUZZ_CHECK(request || request.status().value() != EPROTO);
  return 0;
}
