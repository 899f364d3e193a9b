// The memif control channel: a SOCK_SEQPACKET Unix socket carrying one
// 128-byte message per packet, some with a descriptor (a region's memfd,
// a ring's eventfd) passed beside it. Used by epaird's memif end and the
// client API alike.
#pragma once

#include <sys/socket.h>
#include <sys/un.h>

#include <optional>
#include <string>

#include "epair/status.hpp"
#include "memif_protocol.hpp"
#include "unique_fd.hpp"

namespace epair::memif {

/// "@name" is a name in the abstract namespace (DPDK's default), else a
/// path in the file system.
struct SocketAddress {
  sockaddr_un address{};
  socklen_t length = 0;
  bool abstract = false;

  explicit SocketAddress(const std::string& path);
  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&address); }
};

/// Sends message, passing fd with it when fd >= 0.
Status send_message(int control, const Message& message, int fd = -1);

struct Incoming {
  Message message;
  os::UniqueFd fd;  ///< the first descriptor passed with it; any others are closed
};
/// Reads the next message without blocking; nothing when none is waiting.
/// ECONNRESET ("peer closed the control channel") at its end, EPROTO
/// ("protocol: ...") for what is no memif message, errno otherwise.
Result<std::optional<Incoming>> receive_message(int control);

}  // namespace epair::memif
