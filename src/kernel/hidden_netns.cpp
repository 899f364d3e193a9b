#include "hidden_netns.hpp"

#include <fcntl.h>
#include <linux/magic.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/vfs.h>

#include <cstring>
#include <string>
#include <thread>

namespace epair::kernel {

namespace {

Status path_error(int error, const std::string& what, const std::filesystem::path& path) {
  return Status{error, "hidden namespace " + path.string() + ": " + what + ": " + std::strerror(error)};
}

bool is_mounted_netns(const std::filesystem::path& path) {
  struct statfs fs {};
  return ::statfs(path.c_str(), &fs) == 0 && static_cast<unsigned long>(fs.f_type) == NSFS_MAGIC;
}

// A thread of its own leaves its namespace for a new one and mounts that at
// path; the daemon's threads stay where they are.
Status make(const std::filesystem::path& path) {
  Status result;
  std::thread maker([&] {
    if (::unshare(CLONE_NEWNET) != 0) {
      result = path_error(errno, "unshare", path);
      return;
    }
    os::UniqueFd file(::open(path.c_str(), O_RDONLY | O_CREAT | O_CLOEXEC, 0600));
    if (!file) {
      result = path_error(errno, "create", path);
      return;
    }
    if (::mount("/proc/thread-self/ns/net", path.c_str(), nullptr, MS_BIND, nullptr) != 0) {
      result = path_error(errno, "bind mount", path);
    }
  });
  maker.join();
  return result;
}

}  // namespace

Result<os::UniqueFd> open_hidden_netns(const std::filesystem::path& path) {
  if (!is_mounted_netns(path)) {
    if (Status s = make(path); !s) return s;
  }
  os::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return path_error(errno, "open", path);
  return fd;
}

Status remove_hidden_netns(const std::filesystem::path& path) {
  if (is_mounted_netns(path) && ::umount2(path.c_str(), MNT_DETACH) != 0) return path_error(errno, "unmount", path);
  std::error_code ec;
  std::filesystem::remove(path, ec);
  if (ec) return path_error(ec.value(), "remove", path);
  return {};
}

}  // namespace epair::kernel
