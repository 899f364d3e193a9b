#include "state_file.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstring>
#include <fstream>

namespace epair::daemon {

namespace {

// What one change can add to the state file at most: a new pair's two ends
// with their addresses, or a long description.
constexpr std::size_t kStateSlack = std::size_t{16} * 1024;

bool write_all(int fd, const char* data, std::size_t size) {
  for (off_t offset = 0; size != 0;) {
    const ssize_t n = ::pwrite(fd, data, size, offset);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<std::size_t>(n);
    offset += n;
  }
  return true;
}

std::filesystem::path temporary(const std::filesystem::path& path) { return path.string() + ".tmp"; }

}  // namespace

json StateFile::read() const {
  if (path_.empty() || !std::filesystem::exists(path_)) return json::object();
  json state;
  try {
    std::ifstream in(path_);
    state = json::parse(in);
  } catch (const std::exception& e) {
    throw std::runtime_error(path_.string() + ": " + e.what());
  }
  if (!state.is_object() || state.value("version", 0) != kStateVersion) {
    throw std::runtime_error(path_.string() + ": not an epaird state file of version " + std::to_string(kStateVersion));
  }
  return state;
}

Status StateFile::reserve(const std::string& text) const {
  if (path_.empty()) return {};
  const std::filesystem::path tmp = temporary(path_);
  std::string padded = text;
  padded.resize(padded.size() + kStateSlack, ' ');
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  bool ok = fd >= 0 && write_all(fd, padded.data(), padded.size()) && ::fsync(fd) == 0;
  const int error = errno;
  if (fd >= 0) ::close(fd);
  if (!ok) {
    if (fd >= 0) ::unlink(tmp.c_str());
    const std::string dir = path_.parent_path().string();
    spdlog::error("cannot save state in {}: {}; change refused", dir, std::strerror(error));
    return {error, "cannot save state in " + dir + ": " + std::strerror(error) + " (nothing was changed)"};
  }
  return {};
}

void StateFile::save(const std::string& text) const {
  if (path_.empty()) return;
  const std::filesystem::path tmp = temporary(path_);
  // Without O_TRUNC: the text goes over the space reserve() wrote, so a
  // save after a reservation needs no new space.
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    spdlog::error("cannot write {}: {}", tmp.string(), std::strerror(errno));
    return;
  }
  bool ok = write_all(fd, text.data(), text.size()) && ::ftruncate(fd, static_cast<off_t>(text.size())) == 0 &&
            ::fsync(fd) == 0;
  ok = ::close(fd) == 0 && ok;
  if (!ok || ::rename(tmp.c_str(), path_.c_str()) != 0) {
    spdlog::error("cannot save {}: {}", path_.string(), std::strerror(errno));
    ::unlink(tmp.c_str());
    return;
  }
  const int dir = ::open(path_.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
}

}  // namespace epair::daemon
