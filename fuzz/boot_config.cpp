// Fuzzes the boot configuration's reading (rc.conf's words): any text is
// read whole or refused line by line. Every error names the file and a line
// of the text; a text with none names pairs whose settings are actions
// epaird's check takes, each for an end of its own pair.
#include "boot_config.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

#include "control_protocol.hpp"
#include "fuzz_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const auto config = epair::daemon::parse_boot_config(text, "rc.conf");
  const long lines = std::count(text.begin(), text.end(), '\n') + 1;
  for (const std::string& error : config.errors) {
    FUZZ_CHECK(error.starts_with("rc.conf:"));
    const long line = std::stol(error.substr(8));
    FUZZ_CHECK(line >= 1 && line <= lines);
  }
  if (!config.errors.empty()) return 0;
  for (const auto& pair : config.pairs) {
    FUZZ_CHECK(pair.name.starts_with("epair") && pair.line >= 1 && pair.line <= lines);
    for (const auto& settings : pair.settings) {
      FUZZ_CHECK(settings.end == pair.name + "a" || settings.end == pair.name + "b");
      FUZZ_CHECK(static_cast<bool>(epair::control::parse_actions(settings.actions)));
    }
  }
  return 0;
}
