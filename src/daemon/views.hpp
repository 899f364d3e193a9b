// How an end is shown: the JSON of `epairctl --json` (docs/protocol.md)
// and, in the same object, the text of `epairctl NAME` as ifconfig prints
// it. Each part of the view (addresses, impairment, attachment) is read
// once and written in both forms side by side.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>

#include "end.hpp"
#include "netlink.hpp"

namespace epair::daemon {

using json = nlohmann::json;

/// The end as JSON, with "ifconfig" and "counters_text"; link is its Linux
/// device as last read, if it could be.
json describe_end(const End& end, const std::optional<os::LinkInfo>& link);

}  // namespace epair::daemon
