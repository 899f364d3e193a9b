// The file in which epaird keeps its pairs across restarts (state.json):
// read once at start, rewritten whole after every change.
//
// Guarantees:
// - A save never leaves a torn file: the text goes to NAME.tmp, is synced,
//   and is renamed over the file; the directory is synced after.
// - reserve() before a change writes the space the next save needs, so a
//   full or read-only disk refuses the change instead of losing the state.
// - An empty path keeps nothing: every call succeeds and does nothing.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>

#include "epair/status.hpp"

namespace epair::daemon {

using json = nlohmann::json;

inline constexpr int kStateVersion = 1;

class StateFile {
 public:
  explicit StateFile(std::filesystem::path path) : path_(std::move(path)) {}

  /// The state as last saved; an empty object when there is no file.
  /// Throws std::runtime_error when the file is unreadable or not a state
  /// file of kStateVersion.
  json read() const;
  /// Writes and syncs text and the room one change can add to it at most
  /// in NAME.tmp. ENOSPC, EROFS or another errno, with a one-line message
  /// saying nothing was changed, when it cannot.
  Status reserve(const std::string& text) const;
  /// Replaces the file with text; a failure is logged.
  void save(const std::string& text) const;

 private:
  std::filesystem::path path_;
};

}  // namespace epair::daemon
