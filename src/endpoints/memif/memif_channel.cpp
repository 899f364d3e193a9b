#include "memif_channel.hpp"

#include <algorithm>
#include <cstddef>
#include <cstring>

namespace epair::memif {

SocketAddress::SocketAddress(const std::string& path) {
  address.sun_family = AF_UNIX;
  abstract = path.starts_with('@');
  const std::size_t size = std::min(path.size(), sizeof address.sun_path - 1);
  std::memcpy(address.sun_path, path.c_str(), size);
  if (abstract) address.sun_path[0] = '\0';
  length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + size + (abstract ? 0 : 1));
}

Status send_message(int control, const Message& message, int fd) {
  const Wire wire = encode(message);
  iovec iov{const_cast<std::uint8_t*>(wire.data()), wire.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char space[CMSG_SPACE(sizeof(int))] = {};
  if (fd >= 0) {
    msg.msg_control = space;
    msg.msg_controllen = sizeof space;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
  }
  if (::sendmsg(control, &msg, MSG_NOSIGNAL) != static_cast<ssize_t>(wire.size())) {
    return {errno, "memif: sending " + std::string(type_name(message)) + ": " + std::strerror(errno)};
  }
  return {};
}

Result<std::optional<Incoming>> receive_message(int control) {
  std::uint8_t buffer[kMessageSize + 1];
  iovec iov{buffer, sizeof buffer};
  alignas(cmsghdr) char space[CMSG_SPACE(sizeof(int) * 4)];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = space;
  msg.msg_controllen = sizeof space;
  const ssize_t n = ::recvmsg(control, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return std::optional<Incoming>{};
  if (n == 0) return Status{ECONNRESET, "peer closed the control channel"};
  if (n < 0) return Status{errno, std::string("control channel: ") + std::strerror(errno)};
  // Every descriptor passed is ours to close; one per message is used.
  os::UniqueFd fd;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < count; ++i) {
      int passed;
      std::memcpy(&passed, CMSG_DATA(c) + i * sizeof(int), sizeof passed);
      if (!fd) {
        fd.reset(passed);
      } else {
        ::close(passed);
      }
    }
  }
  if ((msg.msg_flags & MSG_CTRUNC) != 0) return Status{EPROTO, "protocol: too many descriptors in one message"};
  auto message = decode({buffer, static_cast<std::size_t>(n)});
  // decode() says "memif: ..."; on the channel it is a protocol error.
  if (!message) return Status{EPROTO, "protocol: " + message.status().message().substr(7)};
  return std::optional<Incoming>{Incoming{std::move(*message), std::move(fd)}};
}

}  // namespace epair::memif
