#include "server.hpp"

#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>

namespace epair::daemon {

namespace {

constexpr int kCheckIntervalMs = 500;

bool may_change(const AccessPolicy& policy, const Peer& peer) {
  return peer.uid == 0 || (policy.group && peer_in_group(peer, *policy.group));
}

}  // namespace

bool peer_in_group(const Peer& peer, gid_t gid) {
  if (peer.gid == gid) return true;
  std::ifstream status("/proc/" + std::to_string(peer.pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (!line.starts_with("Groups:")) continue;
    std::istringstream groups(line.substr(7));
    long g = 0;
    while (groups >> g) {
      if (static_cast<gid_t>(g) == gid) return true;
    }
  }
  return false;
}

json handle_request(Controller& controller, const AccessPolicy& policy, const Peer& peer, std::string_view line,
                    std::optional<StartedCapture>* capture) {
  auto parsed = control::parse_request(line);
  if (!parsed) return control::error_response(parsed.status());
  control::Request& request = *parsed;
  const std::string& op = request.op;
  const std::string& name = request.name;
  // Captures show the traffic itself: as for tcpdump, not for everyone.
  const bool read_only = !request.changes && !request.capture;
  const bool allowed = read_only ? policy.readers_all || may_change(policy, peer) : may_change(policy, peer);
  if (!allowed) return control::error_response({EACCES, "permission denied"});
  if (request.capture) {
    if (capture == nullptr) return control::error_response({EPROTO, "capture needs a connection of its own"});
    try {
      auto started = controller.start_capture(*request.capture);
      if (!started) return control::error_response(started.status());
      json result = {{"interfaces", request.capture->interfaces},
                     {"snaplen", started->capture->snaplen()},
                     {"buffer_frames", started->capture->slots()}};
      spdlog::info("uid {} pid {}: capture on {}", peer.uid, peer.pid, result["interfaces"].dump());
      capture->emplace(std::move(*started));
      return control::ok_response(std::move(result));
    } catch (const std::exception& e) {
      return control::error_response({EIO, std::string("internal error: ") + e.what()});
    }
  }

  try {
    if (op == "version")
      return control::ok_response({{"protocol", control::kProtocolVersion}, {"version", EPAIR_VERSION}});
    if (op == "cloners") return control::ok_response({{"cloners", json::array({"epair"})}});
    if (op == "list") return control::ok_response({{"interfaces", controller.list(request.group)}});
    if (op == "show") {
      json interfaces = json::array();
      for (const std::string& n : name.empty() ? controller.list() : std::vector<std::string>{name}) {
        auto shown = controller.show(n);
        if (!shown) return control::error_response(shown.status());
        interfaces.push_back(std::move(*shown));
      }
      return control::ok_response({{"interfaces", interfaces}});
    }
    const std::vector<control::Action>& actions = request.actions;
    // Out of descriptors, a destroy is what frees some: its save comes after.
    // (`epairctl NAME destroy` is a configure whose first action destroys.)
    const bool destroys =
        op == "destroy" || (op == "configure" && !actions.empty() && actions.front().verb == "destroy");
    if (Status s = controller.reserve_state(); !s && !(destroys && (s.value() == EMFILE || s.value() == ENFILE))) {
      return control::error_response(s);
    }
    if (request.apply) {
      spdlog::info("uid {} pid {}: apply {}{}", peer.uid, peer.pid, request.apply->file,
                   request.apply->dry_run ? " (dry run)" : "");
      const BootConfig config = parse_boot_config(request.apply->text, request.apply->file);
      // A file that does not read changes nothing.
      if (!config.errors.empty()) {
        return control::ok_response({{"file", config.file}, {"pairs", json::array()}, {"errors", config.errors}});
      }
      return control::ok_response(controller.apply_boot_config(config, request.apply->dry_run));
    }
    if (op == "create") {
      spdlog::info("uid {} pid {}: create {}", peer.uid, peer.pid, name);
      auto created = controller.create(name);
      if (!created) return control::error_response(created.status());
      // As ifconfig does, a setting that fails leaves the pair created.
      std::string final_name;
      if (Status s = controller.configure(*created, actions, &final_name); !s) {
        json response = control::error_response(s);
        response["result"] = {{"name", final_name}};
        return response;
      }
      return control::ok_response({{"name", final_name}});
    }
    if (op == "configure") {
      spdlog::info("uid {} pid {}: configure {}", peer.uid, peer.pid, name);
      std::string final_name;
      if (Status s = controller.configure(name, actions, &final_name); !s) return control::error_response(s);
      return control::ok_response({{"name", final_name}});
    }
    spdlog::info("uid {} pid {}: destroy {}", peer.uid, peer.pid, name);
    if (Status s = controller.destroy(name); !s) return control::error_response(s);
    return control::ok_response(json::object());
  } catch (const std::exception& e) {
    spdlog::error("{}: {}", op, e.what());
    return control::error_response({EIO, std::string("internal error: ") + e.what()});
  }
}

Server::Server(Controller& controller, ServerConfig config) : controller_(controller), config_(std::move(config)) {}

Server::~Server() {
  captures_.clear();  // each writes its counters and closes
  controller_.set_wake_fd(-1);
  for (auto& [fd, client] : clients_) ::close(fd);
  for (auto& [fd, request] : http_clients_) ::close(fd);
  for (int fd : {listen_fd_, epoll_fd_, signal_fd_, wake_fd_, metrics_fd_}) {
    if (fd >= 0) ::close(fd);
  }
  if (config_.metrics.starts_with("unix:") && metrics_fd_ >= 0) ::unlink(config_.metrics.c_str() + 5);
  if (listen_fd_ >= 0) ::unlink(config_.socket_path.c_str());
}

namespace {

// A listening Unix socket at path with the given mode (and group), in place
// of a socket file nobody answers on any more.
Result<int> listen_unix(const std::string& path, mode_t mode, std::optional<gid_t> group, const char* what) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) return Status{ENAMETOOLONG, "socket path too long: " + path};
  std::memcpy(addr.sun_path, path.data(), path.size());
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  const int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const bool answered = ::connect(probe, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(probe);
  if (answered) return Status{EADDRINUSE, std::string("another ") + what + " is listening on " + path};
  ::unlink(path.c_str());
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return Status{errno, std::string("socket: ") + std::strerror(errno)};
  // Created with its final mode, so it is never open to more.
  const mode_t old = ::umask(static_cast<mode_t>(~mode & 0777));
  const int bound = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  ::umask(old);
  Status error;
  if (bound != 0) {
    error = {errno, "cannot listen on " + path + ": " + std::strerror(errno)};
  } else if (group && ::chown(path.c_str(), static_cast<uid_t>(-1), *group) != 0) {
    error = {errno, "chown " + path + ": " + std::strerror(errno)};
  } else if (::listen(fd, 64) != 0) {
    error = {errno, std::string("listen: ") + std::strerror(errno)};
  }
  if (!error) {
    ::close(fd);
    return error;
  }
  return fd;
}

// "127.0.0.1:9474", "[::1]:9474", "localhost:9474": loopback only, the
// metrics say what runs on this host.
Result<int> listen_loopback(const std::string& spec) {
  const auto colon = spec.rfind(':');
  if (colon == std::string::npos || colon + 1 == spec.size()) {
    return Status{EINVAL, "invalid --metrics '" + spec + "' (HOST:PORT or unix:PATH)"};
  }
  std::string host = spec.substr(0, colon);
  const std::string port = spec.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host == "localhost") host = "127.0.0.1";
  addrinfo hints{};
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (::getaddrinfo(host.c_str(), port.c_str(), &hints, &found) != 0 || found == nullptr) {
    return Status{EINVAL, "invalid --metrics '" + spec + "' (HOST:PORT or unix:PATH)"};
  }
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> guard(found, &::freeaddrinfo);
  const bool loopback = (found->ai_family == AF_INET &&
                         (ntohl(reinterpret_cast<const sockaddr_in*>(found->ai_addr)->sin_addr.s_addr) >> 24) == 127) ||
                        (found->ai_family == AF_INET6 &&
                         IN6_IS_ADDR_LOOPBACK(&reinterpret_cast<const sockaddr_in6*>(found->ai_addr)->sin6_addr));
  if (!loopback) return Status{EINVAL, "--metrics " + spec + ": only loopback addresses are served"};
  const int fd = ::socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return Status{errno, std::string("socket: ") + std::strerror(errno)};
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd, found->ai_addr, found->ai_addrlen) != 0 || ::listen(fd, 64) != 0) {
    Status error{errno, "cannot serve metrics on " + spec + ": " + std::strerror(errno)};
    ::close(fd);
    return error;
  }
  return fd;
}

// Sends data on a non-blocking socket, waiting up to timeout_ms each time
// the socket is full; false when the peer is gone or too slow.
bool send_whole(int fd, std::string_view data, int timeout_ms) {
  while (!data.empty()) {
    const ssize_t w = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (w > 0) {
      data.remove_prefix(static_cast<std::size_t>(w));
      continue;
    }
    pollfd p = {fd, POLLOUT, 0};
    if (w < 0 && errno == EAGAIN && ::poll(&p, 1, timeout_ms) > 0) continue;
    return false;
  }
  return true;
}

}  // namespace

Status Server::listen() {
  const mode_t mode = config_.policy.readers_all ? 0666 : config_.policy.group ? 0660 : 0600;
  auto control = listen_unix(config_.socket_path.string(), mode, config_.policy.group, "epaird");
  if (!control) return control.status();
  listen_fd_ = *control;
  if (config_.metrics.empty()) return {};
  auto metrics = config_.metrics.starts_with("unix:")
                     ? listen_unix(config_.metrics.substr(5), mode, config_.policy.group, "metrics server")
                     : listen_loopback(config_.metrics);
  if (!metrics) return metrics.status();
  metrics_fd_ = *metrics;
  return {};
}

void Server::watch_event_fds() {
  std::set<int> now;
  for (int fd : controller_.event_fds()) now.insert(fd);
  for (int fd : event_fds_) {
    if (!now.contains(fd) && !clients_.contains(fd)) ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  }
  for (int fd : now) {
    if (event_fds_.contains(fd)) continue;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0 && errno == EEXIST) {
      ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev);
    }
  }
  event_fds_ = std::move(now);
}

sigset_t block_stop_signals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

Status Server::run() {
  const sigset_t signals = block_stop_signals();
  signal_fd_ = ::signalfd(-1, &signals, SFD_CLOEXEC | SFD_NONBLOCK);
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (signal_fd_ < 0 || wake_fd_ < 0 || epoll_fd_ < 0) return {errno, std::strerror(errno)};
  controller_.set_wake_fd(wake_fd_);
  for (int fd : {listen_fd_, signal_fd_, wake_fd_, metrics_fd_}) {
    if (fd < 0) continue;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
  }
  watch_event_fds();
  spdlog::info("listening on {}", config_.socket_path.string());
  sd_notify(0, "READY=1");

  auto next_check = std::chrono::steady_clock::now() + std::chrono::milliseconds(kCheckIntervalMs);
  for (;;) {
    epoll_event events[32];
    const int n = ::epoll_wait(epoll_fd_, events, 32, kCheckIntervalMs);
    if (n < 0 && errno != EINTR) return {errno, std::string("epoll_wait: ") + std::strerror(errno)};
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == signal_fd_) {
        signalfd_siginfo info{};
        while (::read(signal_fd_, &info, sizeof info) == sizeof info) {
          if (info.ssi_signo == SIGHUP) continue;
          spdlog::info("signal {}: shutting down; the pairs stay for the next epaird", info.ssi_signo);
          sd_notify(0, "STOPPING=1");
          return {};
        }
      } else if (fd == listen_fd_) {
        accept_clients();
      } else if (fd == wake_fd_) {
        std::uint64_t count = 0;
        [[maybe_unused]] ssize_t r = ::read(wake_fd_, &count, sizeof count);
        controller_.check();
      } else if (fd == metrics_fd_) {
        accept_http();
      } else if (http_clients_.contains(fd)) {
        serve_http(fd);
      } else if (clients_.contains(fd)) {
        serve(fd);
      } else if (event_fds_.contains(fd)) {
        controller_.on_events(fd);
      }
    }
    // On a timer, not only when idle: a stream of events must not starve it.
    if (const auto now = std::chrono::steady_clock::now(); now >= next_check) {
      controller_.check();
      next_check = now + std::chrono::milliseconds(kCheckIntervalMs);
    }
    watch_event_fds();
    reap_captures();
  }
}

constexpr std::size_t kMaxClientsPerUser = 64;

void Server::accept_clients() {
  for (;;) {
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) return;
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
      ::close(fd);
      continue;
    }
    // Descriptors are shared with the TAP ends: one user holding many
    // connections open must not starve the others, nor the data path.
    const auto held = std::count_if(clients_.begin(), clients_.end(),
                                    [&](const auto& entry) { return entry.second.peer.uid == cred.uid; });
    if (held >= static_cast<std::ptrdiff_t>(kMaxClientsPerUser)) {
      if (refused_clients_++ % 1000 == 0) {
        spdlog::warn("uid {} holds {} connections: refusing more ({} refused so far)", cred.uid, held,
                     refused_clients_);
      }
      ::close(fd);
      continue;
    }
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.fd = fd;
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0 && errno == EEXIST) {
      ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev);
    }
    clients_[fd] = Client{{cred.pid, cred.uid, cred.gid}, {}};
  }
}

void Server::close_client(int fd) {
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  ::close(fd);
  clients_.erase(fd);
}

void Server::serve(int fd) {
  Client& client = clients_[fd];
  char chunk[65536];
  bool eof = false;
  for (;;) {
    const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n > 0) {
      client.buffer.append(chunk, static_cast<std::size_t>(n));
      if (client.buffer.size() > control::kMaxRequestBytes) {
        close_client(fd);
        return;
      }
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) break;
    if (n < 0) {
      close_client(fd);
      return;
    }
    eof = true;  // answered below; a last request without a newline is dropped
    break;
  }
  std::size_t newline = 0;
  while ((newline = client.buffer.find('\n')) != std::string::npos) {
    const std::string line = client.buffer.substr(0, newline);
    client.buffer.erase(0, newline + 1);
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    std::optional<StartedCapture> capture;
    const std::string response = handle_request(controller_, config_.policy, client.peer, line, &capture)
                                     .dump(-1, ' ', false, json::error_handler_t::replace) +
                                 "\n";
    // Responses are small; a client that does not read them is dropped.
    if (!send_whole(fd, response, 2000)) {
      close_client(fd);
      return;
    }
    if (capture) {
      // The connection is the capture's from now on.
      ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
      clients_.erase(fd);
      captures_.push_back(
          std::make_unique<CaptureSession>(fd, std::move(capture->capture), std::move(capture->ifps), capture->count));
      captures_.back()->start();
      return;
    }
  }
  if (eof) close_client(fd);
}

void Server::reap_captures() {
  std::erase_if(captures_, [this](const auto& session) {
    if (!session->finished()) return false;
    const std::uint64_t dropped = session->counters().dropped;
    for (const auto& ifp : session->interfaces()) ended_capture_drops_[ifp->name()] += dropped;
    return true;
  });
}

CaptureMetrics Server::capture_metrics() const {
  CaptureMetrics metrics;
  metrics.dropped = ended_capture_drops_;
  for (const auto& session : captures_) {
    const std::uint64_t dropped = session->counters().dropped;
    for (const auto& ifp : session->interfaces()) {
      metrics.running[ifp->name()] += session->finished() ? 0 : 1;
      metrics.dropped[ifp->name()] += dropped;
    }
  }
  return metrics;
}

void Server::accept_http() {
  for (;;) {
    const int fd = ::accept4(metrics_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) return;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.fd = fd;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
    http_clients_[fd] = {};
  }
}

void Server::close_http(int fd) {
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  ::close(fd);
  http_clients_.erase(fd);
}

// Just enough HTTP/1.1 for a scraper: GET /metrics, one response, close.
void Server::serve_http(int fd) {
  std::string& request = http_clients_[fd];
  char chunk[4096];
  for (;;) {
    const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n > 0) {
      request.append(chunk, static_cast<std::size_t>(n));
      if (request.size() > 16384) break;
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) break;
    close_http(fd);
    return;
  }
  if (request.find("\r\n\r\n") == std::string::npos && request.size() <= 16384) return;
  const std::string line = request.substr(0, request.find("\r\n"));
  std::string status = "200 OK";
  std::string type = "text/plain; version=0.0.4; charset=utf-8";
  std::string body;
  const bool head = line.starts_with("HEAD ");
  if (!line.starts_with("GET ") && !head) {
    status = "405 Method Not Allowed";
    type = "text/plain";
    body = "only GET\n";
  } else if (const std::string target = line.substr(line.find(' ') + 1, line.rfind(' ') - line.find(' ') - 1);
             target != "/metrics" && !target.starts_with("/metrics?")) {
    status = "404 Not Found";
    type = "text/plain";
    body = "epaird serves /metrics\n";
  } else {
    body = controller_.metrics(capture_metrics());
  }
  std::string response = "HTTP/1.1 " + status + "\r\nContent-Type: " + type +
                         "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
  if (!head) response += body;
  send_whole(fd, response, 1000);
  close_http(fd);
}

}  // namespace epair::daemon
