// The engine's counters of the ends, in a file of the state directory that
// epaird maps (counters): a CounterBlock (epair/counter_block.hpp) for
// each side of each unit, so that a pair adopted after a restart, kill -9
// too, counts on from where it was. Kernel-path ends keep theirs in the
// program's map instead, with the kernel's (kernel::Datapath).
//
// Guarantees:
// - Every epaird that maps the file finds an end's block at the same
//   place; what a killed epaird counted is there (the page cache keeps
//   what a shared mapping wrote).
// - The file is sparse, and a pair's blocks take their room on disk
//   before they are handed out: a write into a hole the disk could not
//   fill would kill epaird (SIGBUS), a pair refused room counts in memory.
// - A new pair's maker zeroes its blocks; adoption takes them as they are.
// - Opened and asked on the control thread; the blocks may be counted in
//   from any thread.
#pragma once

#include <filesystem>
#include <memory>

#include "epair/counter_block.hpp"
#include "epair/status.hpp"
#include "unique_fd.hpp"

namespace epair::daemon {

class CounterFile {
 public:
  /// Opens or makes the file (mode 0600) at its full, sparse length.
  static Result<CounterFile> open(const std::filesystem::path& path);

  /// The blocks of pair unit's two ends, counts in them as they are; an
  /// errno (ENOSPC, ...) with its message when their room cannot be taken.
  Result<PairCounters> pair(int unit) const;

 private:
  CounterFile(os::UniqueFd fd, std::shared_ptr<CounterBlock> blocks) : fd_(std::move(fd)), blocks_(std::move(blocks)) {}

  os::UniqueFd fd_;
  // The whole file mapped; each block handed out keeps the mapping.
  std::shared_ptr<CounterBlock> blocks_;
};

}  // namespace epair::daemon
