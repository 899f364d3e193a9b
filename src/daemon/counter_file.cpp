#include "counter_file.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "epair/engine.hpp"

namespace epair::daemon {

namespace {

constexpr std::size_t kPairBytes = 2 * sizeof(CounterBlock);
constexpr std::size_t kFileBytes = (kMaxUnit + 1) * kPairBytes;

Status file_error(const std::filesystem::path& path, const char* what) {
  return Status{errno, path.string() + ": " + what + ": " + std::strerror(errno)};
}

}  // namespace

Result<CounterFile> CounterFile::open(const std::filesystem::path& path) {
  os::UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd) return file_error(path, "open");
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return file_error(path, "stat");
  if (static_cast<std::size_t>(st.st_size) != kFileBytes && ::ftruncate(fd.get(), kFileBytes) != 0) {
    return file_error(path, "truncate");
  }
  void* mapped = ::mmap(nullptr, kFileBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (mapped == MAP_FAILED) return file_error(path, "mmap");
  std::shared_ptr<CounterBlock> blocks(static_cast<CounterBlock*>(mapped),
                                       [](CounterBlock* p) { ::munmap(p, kFileBytes); });
  return CounterFile(std::move(fd), std::move(blocks));
}

Result<PairCounters> CounterFile::pair(int unit) const {
  if (unit < 0 || unit > kMaxUnit) return Status{EINVAL, "no counters for unit " + std::to_string(unit)};
  const auto at = static_cast<off_t>(static_cast<std::size_t>(unit) * kPairBytes);
  if (int err = ::posix_fallocate(fd_.get(), at, kPairBytes); err != 0) {
    return Status{err, "counters of epair" + std::to_string(unit) + ": " + std::strerror(err)};
  }
  CounterBlock* a = blocks_.get() + static_cast<std::ptrdiff_t>(unit) * 2;
  return PairCounters{{blocks_, a}, {blocks_, a + 1}};
}

}  // namespace epair::daemon
