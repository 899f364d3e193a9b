// The boot configuration, in the words of FreeBSD's rc.conf:
//
//     cloned_interfaces="epair0 epair1"
//     create_args_epair1="mtu 9000"
//     ifconfig_epair0a="inet 10.4.6.1/24 up"
//     ifconfig_epair0b="vnet web inet 10.4.6.2/24"
//     ifconfig_epair0b_ipv6="inet6 fd00::2/64"
//
// cloned_interfaces names the pairs (epairN: a unit is needed, for the
// other variables to name its ends); create_args_epairN holds the settings
// of its creation (as `epairctl epairN create ...`, side a);
// ifconfig_<end>, ifconfig_<end>_aliasN and ifconfig_<end>_ipv6 those of
// an end, in epairctl's words split at blanks (as the shell splits them
// for ifconfig: quotes inside a value are characters), applied in that
// order, and ifconfig_<end>_descr its description, the whole value; an end
// with any is brought UP after them unless one says down, as rc's netif
// does. ifconfig_<end>_name renames the end first; the other variables may
// then name it by its new name (ifconfig_jail0), as rc.conf's do.
//
// Guarantees:
// - The whole text is read before anything is applied: parse() says, for
//   each bad line, "FILE:LINE: why", and a text with any applies nothing.
// - Syntax is rc.conf's (a shell's assignments): `#` comments, blank lines,
//   NAME=value with the value bare, in "double" quotes (\" and \\ kept as
//   the characters) or in 'single' quotes; `$` (a shell's expansion) is
//   refused, not expanded.
// - Variables other than the four are refused, so that a misspelt one is
//   not silently ignored.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace epair::daemon {

using json = nlohmann::json;

/// The settings of one variable, as protocol actions, and where they are.
struct BootSettings {
  std::string variable;
  int line = 0;
  std::string end;  ///< the end they apply to
  json actions = json::array();
};

/// A pair cloned_interfaces names, with every setting the file gives it,
/// in the order they apply: creation first, then side a's, then side b's.
struct BootPair {
  std::string name;  ///< epairN
  int line = 0;      ///< of cloned_interfaces
  std::vector<BootSettings> settings;
};

struct BootConfig {
  std::string file;  ///< as the messages name it
  std::vector<BootPair> pairs;
  std::vector<std::string> errors;  ///< "FILE:LINE: why", one a bad line
};

/// Reads text, the content of file.
BootConfig parse_boot_config(std::string_view text, const std::string& file);

}  // namespace epair::daemon
