#include "netns.hpp"

#include <fcntl.h>
#include <linux/magic.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include <charconv>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>

namespace epair::os {

std::string netns_dir() {
  const char* dir = std::getenv("EPAIR_NETNS_DIR");
  return dir != nullptr && *dir != '\0' ? dir : "/run/netns";
}

Result<NetnsSpec> parse_netns(std::string_view text) {
  if (text.empty() || text == "." || text == ".." || text.find('/') != std::string_view::npos || text.size() > 255) {
    return Status{EINVAL, "invalid namespace name '" + std::string(text) + "'"};
  }
  pid_t pid = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), pid);
  if (error == std::errc{} && end == text.data() + text.size()) {
    if (pid <= 0) return Status{EINVAL, "invalid process id " + std::string(text)};
    return NetnsSpec{"pid:" + std::string(text), "/proc/" + std::string(text) + "/ns/net", pid};
  }
  return NetnsSpec{std::string(text), netns_dir() + "/" + std::string(text), 0};
}

NetnsSpec spec_of_vnet(std::string_view vnet) {
  if (vnet.starts_with("pid:")) {
    auto spec = parse_netns(vnet.substr(4));
    if (spec) return *spec;
  }
  return NetnsSpec{std::string(vnet), netns_dir() + "/" + std::string(vnet), 0};
}

namespace {

std::string display(const NetnsSpec& spec) {
  return spec.pid != 0 ? "process " + std::to_string(spec.pid) : "namespace " + spec.name;
}

}  // namespace

Result<UniqueFd> open_netns(const NetnsSpec& spec) {
  UniqueFd fd(::open(spec.path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    const int error = errno;
    if (error == ENOENT) return Status{ENOENT, display(spec) + " does not exist"};
    return Status{error, display(spec) + ": " + std::strerror(error)};
  }
  // A plain file under /run/netns is left behind when a mount went away.
  struct statfs fs {};
  if (::fstatfs(fd.get(), &fs) != 0 || fs.f_type != static_cast<decltype(fs.f_type)>(NSFS_MAGIC)) {
    return Status{ENOENT, display(spec) + " does not exist"};
  }
  return fd;
}

Result<NetnsId> netns_id(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return Status{errno, std::string("fstat: ") + std::strerror(errno)};
  return NetnsId{st.st_dev, st.st_ino};
}

Result<NetnsId> netns_id(const NetnsSpec& spec) {
  struct stat st {};
  if (::stat(spec.path.c_str(), &st) != 0) return Status{ENOENT, display(spec) + " does not exist"};
  return NetnsId{st.st_dev, st.st_ino};
}

std::optional<std::string> named_netns(const NetnsId& id) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(netns_dir(), ec)) {
    struct stat st {};
    if (::stat(entry.path().c_str(), &st) == 0 && st.st_dev == id.dev && st.st_ino == id.ino) {
      return entry.path().filename().string();
    }
  }
  return std::nullopt;
}

Status run_in_netns(int netns_fd, const std::function<Status()>& fn) {
  Status result;
  std::thread worker([&] {
    if (::setns(netns_fd, CLONE_NEWNET) != 0) {
      result = Status{errno, std::string("setns: ") + std::strerror(errno)};
      return;
    }
    result = fn();
  });
  worker.join();
  return result;
}

}  // namespace epair::os
