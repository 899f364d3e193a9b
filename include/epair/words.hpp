// What the parsers of settings lines share: splitting a line into words and
// reading a whole number with one line of error.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "epair/status.hpp"

namespace epair {

/// The words of text, split at spaces; runs of spaces count as one.
std::vector<std::string_view> split_words(std::string_view text);

/// text as a whole number from low to high, or EINVAL "PREFIXWHAT must be
/// a whole number from LOW to HIGH: 'TEXT'" (prefix e.g. "impair: ").
Result<std::uint64_t> parse_whole_number(std::string_view prefix, std::string_view what, std::string_view text,
                                         std::uint64_t low, std::uint64_t high);

}  // namespace epair
