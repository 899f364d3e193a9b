#include "capture_session.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>

#include "pcapng.hpp"

namespace epair::daemon {

namespace {

constexpr auto kClientCheck = std::chrono::milliseconds(50);

std::uint64_t now_ns() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
}

}  // namespace

CaptureSession::CaptureSession(int fd, std::unique_ptr<Capture> capture, std::vector<std::shared_ptr<Interface>> ifps,
                               std::uint64_t count)
    : fd_(fd), capture_(std::move(capture)), ifps_(std::move(ifps)), count_(count) {}

CaptureSession::~CaptureSession() {
  stop();
  ::close(fd_);
}

void CaptureSession::start() {
  thread_ = std::thread([this] { run(); });
}

void CaptureSession::stop() {
  stopping_.store(true, std::memory_order_relaxed);
  if (thread_.joinable()) thread_.join();
}

bool CaptureSession::send_all(std::string& out) {
  std::size_t sent = 0;
  while (sent < out.size()) {
    const ssize_t n = ::send(fd_, out.data() + sent, out.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (stopping_.load(std::memory_order_relaxed)) return false;
      pollfd p = {fd_, POLLOUT, 0};
      ::poll(&p, 1, 100);
      continue;
    }
    return false;
  }
  out.clear();
  return true;
}

bool CaptureSession::client_done() {
  pollfd p = {fd_, POLLIN | POLLRDHUP, 0};
  if (::poll(&p, 1, 0) <= 0) return false;
  if ((p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0) return true;
  char ignored[256];
  const ssize_t n = ::recv(fd_, ignored, sizeof ignored, MSG_DONTWAIT);
  return n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR);
}

void CaptureSession::run() {
  std::string out;
  pcapng::append_section_header(out, "epaird " EPAIR_VERSION);
  for (const auto& ifp : ifps_) pcapng::append_interface(out, ifp->name(), capture_->snaplen());
  bool open = send_all(out);
  std::uint64_t delivered = 0;
  auto next_check = std::chrono::steady_clock::now();
  CapturedFrame* frames[64];
  // Writes what the ring holds, up to the count; false once the count is met.
  auto write_ready = [&] {
    while (const std::size_t n = capture_->read(frames)) {
      for (std::size_t i = 0; i < n; ++i) {
        if (count_ != 0 && delivered >= count_) break;
        const CapturedFrame& f = *frames[i];
        pcapng::append_packet(out, f.port, f.timestamp_ns,
                              f.direction == TapDirection::kIn ? pcapng::Direction::kIn : pcapng::Direction::kOut,
                              {f.data, f.length}, f.wire_length);
        ++delivered;
      }
      capture_->release({frames, n});
      if (out.size() >= (1u << 16)) break;
    }
    return count_ == 0 || delivered < count_;
  };
  while (open && !stopping_.load(std::memory_order_relaxed)) {
    const bool more = write_ready();
    const bool wrote = !out.empty();
    if (wrote && !send_all(out)) {
      open = false;
      break;
    }
    if (!more) break;
    if (const auto now = std::chrono::steady_clock::now(); now >= next_check) {
      next_check = now + kClientCheck;
      if (client_done()) break;
      bool gone = false;
      for (const auto& ifp : ifps_) gone = gone || ifp->peer() == nullptr;
      if (gone) break;
    }
    if (!wrote) capture_->wait(kClientCheck);
  }
  capture_->detach();
  if (open) {
    // What was captured before the end still goes out, up to the count.
    write_ready();
    const CaptureCounters counters = capture_->counters();
    pcapng::append_statistics(out, 0, {now_ns(), counters.seen, counters.matched, counters.dropped, delivered});
    send_all(out);
    ::shutdown(fd_, SHUT_WR);
  }
  finished_.store(true, std::memory_order_release);
}

}  // namespace epair::daemon
