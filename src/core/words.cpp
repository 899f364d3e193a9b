#include "epair/words.hpp"

#include <algorithm>
#include <charconv>
#include <string>

namespace epair {

std::vector<std::string_view> split_words(std::string_view text) {
  std::vector<std::string_view> words;
  for (std::size_t start = 0; start < text.size();) {
    const std::size_t space = std::min(text.find(' ', start), text.size());
    if (space > start) words.push_back(text.substr(start, space - start));
    start = space + 1;
  }
  return words;
}

Result<std::uint64_t> parse_whole_number(std::string_view prefix, std::string_view what, std::string_view text,
                                         std::uint64_t low, std::uint64_t high) {
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < low || value > high) {
    return Status{EINVAL, std::string(prefix) + std::string(what) + " must be a whole number from " +
                              std::to_string(low) + " to " + std::to_string(high) + ": '" + std::string(text) + "'"};
  }
  return value;
}

}  // namespace epair
