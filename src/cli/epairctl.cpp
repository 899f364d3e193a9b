// epairctl: ifconfig's grammar for epairs, spoken to epaird.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "command_line.hpp"
#include "pcapng.hpp"
#include "summary.hpp"

namespace {

using epair::cli::CommandLine;
using epair::cli::Mode;
using json = nlohmann::json;

constexpr const char* kUsage = R"(usage: epairctl [-s PATH] [--json] -C
       epairctl [-s PATH] [--json] -l
       epairctl [-s PATH] [--json] -g GROUP
       epairctl [-s PATH] [--json] -f FILE [--dry-run]
       epairctl [-s PATH] [--json] [-v] -a
       epairctl [-s PATH] [--json] [-v] IFNAME
       epairctl [-s PATH] epair|epairN create [SETTING ...]
       epairctl [-s PATH] IFNAME SETTING ...
       epairctl [-s PATH] [--json] stats [-w SECONDS] [-c COUNT] [IFNAME ...]
       epairctl [-s PATH] [--json] capture IFNAME[,IFNAME...] [-i both|in|out]
                [-c COUNT] [-s SNAPLEN] [-B KIB] [-w FILE|-] [FILTER ...]

Creates, configures and shows epair interfaces through epaird, with the
words of FreeBSD's ifconfig.

settings, applied in order:
  up | down               bring the end up or down
  mtu N                   MTU of this end (72..65535; 72..65521 on the tap
                          data path)
  ether MAC               Ethernet address
  description TEXT        description (also `descr`); -description clears it
  name NEWNAME            rename the end (prints the new name); its pair, unit,
                          counters and settings stay
  group NAME              join interface group NAME; -group NAME leaves it
  txcsum | -txcsum        transmit checksum offload of the pair (IPv4; txcsum6
                          for IPv6), on both ends and their Linux devices
  vlanhwtag | -vlanhwtag  VLAN tag offload of this end (on by default)
  inet ADDR[/LEN] [alias] add an IPv4 address inside the end's namespace, or
                          change the prefix of one it has
  inet ADDR -alias        remove it (also `delete`); A/LEN: under that prefix
  inet6 ADDR[/LEN]        the same for IPv6 (alias, -alias, delete)
  vnet NAME|PID           move the end into network namespace NAME (ip netns)
                          or into that of process PID
  -vnet NAME|PID          bring the end back from that namespace
  destroy                 destroy the pair (both ends)
  attach vxlan remote ADDR [local ADDR] [vni N] [dstport N] [srcport MIN MAX]
         [ttl N] [dev IFACE] [df set|unset]
                          make the end a VXLAN tunnel end (RFC 7348): what
                          its peer sends goes to the remote over UDP (port
                          4789), what arrives for the VNI goes to its peer
  attach memif socket PATH|@NAME [role server|client] [id N] [secret S]
         [ring-size 1024] [buffer-size 2048] [queues N]
         [rx-mode interrupt|polling] [rx-usecs N] [flow-control on|off]
         [zero-copy on|off]
                          make the end a memif interface (Ethernet mode) that
                          DPDK's net_memif, VPP or libmemif programs connect
                          to (server, the default) or that connects to them
  detach                  give a VXLAN or memif end its TAP back
  impair SETTING ...      shape and impair what this end transmits, in tc
                          netem's words (the rest of the line; see below)
  impair clear            remove the impairment; frames it holds are dropped

impair settings (units as tc's; each at most once; a bad one changes nothing):
  rate RATE [burst SIZE]  token bucket: 100mbit, 1gbit...; burst 32k (default
                          1 ms at the rate), counted in bytes on the wire
  limit FRAMES            frames held at once, then tail drop (default 1000)
  delay TIME [jitter TIME [distribution uniform|normal|pareto]]
                          20ms, 500us...; frames keep their order
  loss P% | loss gemodel P% [R% [1-H% [1-K%]]]
                          random loss, or Gilbert-Elliott bursts
  duplicate P%  corrupt P%  reorder P% [gap N]
                          a reordered frame skips rate and delay
  seed N                  the same decisions for the same frames

stats: packets, bytes and drops per second of each end (or those named),
every SECONDS (default 1), COUNT times or until Ctrl-C, as netstat -w.

capture: frames that cross the ends, filtered with tcpdump's language
(pcap-filter(7)) where epair taps them; one line per frame, or pcapng
written to FILE (- for stdout: `| tshark -r -`). Ctrl-C or COUNT ends it.
  -i both|in|out          direction of the frames (default both)
  -c COUNT                stop after COUNT frames
  -s SNAPLEN              bytes kept of each frame (default 262144)
  -B KIB                  capture buffer in KiB (default 4096); when it is
                          full frames are lost to the capture, not the wire
  -w FILE|-               write pcapng instead of printing lines

options:
  -C                      list the interface cloners
  -l                      list the interfaces
  -g GROUP                list the members of interface group GROUP, one a
                          line (epair: every end)
  -f FILE                 make the pairs that boot configuration FILE (rc.conf's
                          words: cloned_interfaces, ifconfig_epairNa...; -
                          for stdin) names and that are missing; those that
                          exist are left alone (see epaird(8), --config)
  -n, --dry-run           with -f: say what would be made, make nothing
  -a                      show every interface
  -v                      with the counters
  -s, --socket PATH       epaird's socket (default $EPAIR_SOCKET or /run/epair/epaird.sock)
  -j, --json              machine-readable output
  -h, --help              this text

Errors are one line on stderr and a non-zero exit status. See epairctl(8).
)";

[[noreturn]] void usage_error(const std::string& message) {
  std::fprintf(stderr, "epairctl: %s (see epairctl --help)\n", message.c_str());
  std::exit(2);
}

class Connection {
 public:
  explicit Connection(std::string path) : path_(std::move(path)) {}
  ~Connection() {
    if (fd_ >= 0) ::close(fd_);
  }

  // Sends one request; returns the response, or exits with the error line
  // when the daemon cannot be reached.
  json request(const json& body) {
    if (fd_ < 0) connect();
    const std::string line = body.dump() + "\n";
    for (std::size_t sent = 0; sent < line.size();) {
      const ssize_t n = ::send(fd_, line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) unreachable(std::strerror(errno));
      sent += static_cast<std::size_t>(n);
    }
    std::string reply;
    char chunk[65536];
    while (reply.find('\n') == std::string::npos) {
      const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n == 0) unreachable("connection closed");
      if (n < 0) {
        if (errno == EINTR) continue;
        unreachable(std::strerror(errno));
      }
      reply.append(chunk, static_cast<std::size_t>(n));
    }
    rest_ = reply.substr(reply.find('\n') + 1);
    try {
      return json::parse(reply.substr(0, reply.find('\n')));
    } catch (const json::exception&) {
      unreachable("invalid response");
    }
  }

  int fd() const { return fd_; }
  // Bytes that came after the last response line (a capture's stream).
  std::string take_rest() { return std::exchange(rest_, {}); }

 private:
  [[noreturn]] void unreachable(const std::string& why) {
    std::fprintf(stderr, "epairctl: cannot reach epaird at %s: %s\n", path_.c_str(), why.c_str());
    std::exit(1);
  }
  void connect() {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path_.size() >= sizeof addr.sun_path) unreachable("socket path too long");
    std::memcpy(addr.sun_path, path_.data(), path_.size());
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      unreachable(std::strerror(errno));
    }
  }

  std::string path_;
  int fd_ = -1;
  std::string rest_;
};

// Exits 1 with the daemon's one-line error; in JSON mode the error object
// also goes to stdout.
json result_or_exit(const json& response, bool json_output) {
  if (response.value("ok", false)) return response["result"];
  const json& error = response.value("error", json::object());
  if (json_output) std::printf("%s\n", json{{"error", error}}.dump(2).c_str());
  std::fprintf(stderr, "epairctl: %s\n", error.value("message", std::string("unknown error")).c_str());
  std::exit(1);
}

void print_interfaces(const json& result, const CommandLine& options) {
  if (options.json_output) {
    std::printf("%s\n", result.dump(2).c_str());
    return;
  }
  for (const json& ifp : result["interfaces"]) {
    std::fputs(ifp.value("ifconfig", std::string()).c_str(), stdout);
    if (options.verbose) std::fputs(ifp.value("counters_text", std::string()).c_str(), stdout);
  }
}

volatile sig_atomic_t interrupted = 0;

// The counters stats turns into rates; drops are every loss counted.
struct EndCounters {
  std::uint64_t ipackets, opackets, ibytes, obytes, drops;
};

// Ctrl-C and SIGTERM end a capture or stats cleanly: they set interrupted.
void catch_interrupts() {
  struct sigaction action {};
  action.sa_handler = [](int) { interrupted = 1; };
  ::sigaction(SIGINT, &action, nullptr);
  ::sigaction(SIGTERM, &action, nullptr);
}

bool write_all(int fd, const char* data, std::size_t size) {
  while (size != 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

// One line per frame, as tcpdump prints it, or a JSON object.
void print_frame(const epair::pcapng::Packet& packet, const std::string& port, bool as_json) {
  const char* direction = packet.direction == epair::pcapng::Direction::kIn ? "In" : "Out";
  const std::string line = epair::pcap::summarize(packet.data, packet.wire_length);
  if (as_json) {
    std::printf("%s\n", json{{"time_ns", packet.timestamp_ns},
                             {"interface", port},
                             {"direction", direction},
                             {"length", packet.wire_length},
                             {"captured", packet.data.size()},
                             {"summary", line}}
                            .dump()
                            .c_str());
  } else {
    std::printf("%s %s %-3s %s\n", epair::pcap::format_time(packet.timestamp_ns).c_str(), port.c_str(), direction,
                line.c_str());
  }
}

// tcpdump's closing lines on stderr, and with as_json a JSON object too.
void print_totals(std::uint64_t captured, const epair::pcapng::Statistics& stats, bool as_json) {
  if (as_json) {
    std::printf("%s\n", json{{"captured", captured},
                             {"received_by_filter", stats.accepted},
                             {"seen", stats.received},
                             {"dropped_by_capture", stats.dropped}}
                            .dump()
                            .c_str());
  }
  std::fprintf(stderr, "%llu packets captured\n%llu packets received by filter\n%llu packets dropped by capture\n",
               static_cast<unsigned long long>(captured), static_cast<unsigned long long>(stats.accepted),
               static_cast<unsigned long long>(stats.dropped));
}

// epairctl capture: asks epaird for a capture, then reads its pcapng stream
// until epaird ends it; Ctrl-C asks epaird to end it (half-close), so the
// counters of the last block still arrive.
int capture(Connection& daemon, const CommandLine& options) {
  namespace pcapng = epair::pcapng;
  const bool writing = options.output.has_value();
  const std::string output = options.output.value_or("");
  int out_fd = -1;
  if (writing) {
    out_fd = output == "-" ? STDOUT_FILENO : ::open(output.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out_fd < 0) {
      std::fprintf(stderr, "epairctl: %s: %s\n", output.c_str(), std::strerror(errno));
      return 1;
    }
  }
  const json result = result_or_exit(daemon.request(options.request), options.json_output && !writing);
  catch_interrupts();
  ::signal(SIGPIPE, SIG_IGN);
  std::string names;
  for (const json& name : result["interfaces"]) names += (names.empty() ? "" : ", ") + name.get<std::string>();
  std::fprintf(stderr, "capturing on %s, link-type EN10MB (Ethernet), snapshot length %u bytes\n", names.c_str(),
               result.value("snaplen", 0u));

  pcapng::Reader reader;
  std::vector<std::string> ports;
  std::optional<pcapng::Statistics> stats;
  std::uint64_t captured = 0;
  bool asked_to_stop = false;
  bool output_ok = true;
  // Reads blocks as they complete; prints a line per frame unless writing.
  auto consume = [&](std::string_view bytes) {
    if (writing && output_ok && !write_all(out_fd, bytes.data(), bytes.size())) output_ok = false;
    reader.feed({reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()});
    while (auto block = reader.next()) {
      if (block->type == pcapng::kInterfaceDescription) ports.push_back(pcapng::parse_interface_name(*block));
      if (auto s = pcapng::parse_statistics(*block)) stats = s;
      auto packet = pcapng::parse_packet(*block);
      if (!packet) continue;
      ++captured;
      if (writing) continue;
      print_frame(*packet, packet->interface < ports.size() ? ports[packet->interface] : "?", options.json_output);
    }
    if (!writing) std::fflush(stdout);
  };
  consume(daemon.take_rest());
  char chunk[1 << 16];
  for (;;) {
    if ((interrupted || !output_ok) && !asked_to_stop) {
      ::shutdown(daemon.fd(), SHUT_WR);
      asked_to_stop = true;
    }
    pollfd p = {daemon.fd(), POLLIN, 0};
    if (::poll(&p, 1, 200) <= 0) continue;
    const ssize_t n = ::recv(daemon.fd(), chunk, sizeof chunk, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    consume({chunk, static_cast<std::size_t>(n)});
    if (!reader.error().empty()) {
      std::fprintf(stderr, "epairctl: capture stream: %s\n", reader.error().c_str());
      return 1;
    }
  }
  if (writing && out_fd != STDOUT_FILENO) ::close(out_fd);
  if (!stats || reader.pending() != 0) {
    std::fprintf(stderr, "epairctl: capture ended early: epaird closed the stream (%llu frames captured)\n",
                 static_cast<unsigned long long>(captured));
    return 1;
  }
  print_totals(captured, *stats, options.json_output && !writing);
  return 0;
}

// epairctl stats: rates from the counters of two `show` answers in a row.
int stats(Connection& daemon, const CommandLine& options) {
  const json& request = options.request;
  const std::vector<std::string>& names = options.names;
  const std::uint64_t count = options.count;
  const double interval = options.interval;
  struct Sample {
    std::map<std::string, EndCounters> ends;
    std::chrono::steady_clock::time_point when;
  };
  auto sample = [&] {
    Sample s;
    std::vector<json> shown;
    if (names.empty()) {
      const json result = result_or_exit(daemon.request(request), options.json_output);
      for (const json& ifp : result["interfaces"]) shown.push_back(ifp);
    } else {
      for (const std::string& name : names) {
        json one = request;
        one["name"] = name;
        shown.push_back(result_or_exit(daemon.request(one), options.json_output)["interfaces"][0]);
      }
    }
    s.when = std::chrono::steady_clock::now();
    for (const json& ifp : shown) {
      const json& c = ifp["counters"];
      s.ends[ifp["name"].get<std::string>()] = {c["ipackets"].get<std::uint64_t>(), c["opackets"].get<std::uint64_t>(),
                                                c["ibytes"].get<std::uint64_t>(), c["obytes"].get<std::uint64_t>(),
                                                c["ierrors"].get<std::uint64_t>() + c["oerrors"].get<std::uint64_t>() +
                                                    c["iqdrops"].get<std::uint64_t>() +
                                                    c["oqdrops"].get<std::uint64_t>()};
    }
    return s;
  };
  catch_interrupts();
  Sample last = sample();
  std::uint64_t lines = 0;
  for (std::uint64_t reports = 0; count == 0 || reports < count; ++reports) {
    const auto due = last.when + std::chrono::duration<double>(interval);
    while (!interrupted && std::chrono::steady_clock::now() < due) ::usleep(20000);
    if (interrupted) break;
    Sample now = sample();
    const double seconds = std::chrono::duration<double>(now.when - last.when).count();
    json rows = json::array();
    for (const auto& entry : now.ends) {
      const std::string& name = entry.first;
      auto before = last.ends.find(name);
      if (before == last.ends.end()) continue;
      auto rate = [&](std::uint64_t EndCounters::*field) {
        return static_cast<double>(entry.second.*field - before->second.*field) / seconds;
      };
      rows.push_back({{"name", name},
                      {"in_pps", rate(&EndCounters::ipackets)},
                      {"out_pps", rate(&EndCounters::opackets)},
                      {"in_bytes_per_s", rate(&EndCounters::ibytes)},
                      {"out_bytes_per_s", rate(&EndCounters::obytes)},
                      {"drops_per_s", rate(&EndCounters::drops)}});
    }
    if (options.json_output) {
      std::printf("%s\n", json{{"interval_s", seconds}, {"interfaces", rows}}.dump().c_str());
    } else {
      if (lines % 20 == 0) {
        std::printf("%-12s %12s %14s %12s %14s %10s\n", "", "input", "", "output", "", "drops");
        std::printf("%-12s %12s %14s %12s %14s %10s\n", "name", "packets/s", "bytes/s", "packets/s", "bytes/s", "/s");
      }
      for (const json& row : rows) {
        std::printf("%-12s %12.0f %14.0f %12.0f %14.0f %10.0f\n", row["name"].get<std::string>().c_str(),
                    row["in_pps"].get<double>(), row["in_bytes_per_s"].get<double>(), row["out_pps"].get<double>(),
                    row["out_bytes_per_s"].get<double>(), row["drops_per_s"].get<double>());
        ++lines;
      }
    }
    std::fflush(stdout);
    last = std::move(now);
  }
  return 0;
}

// Each pair's fate, one a line; each error on stderr. Exit status 1 when
// the file had one.
int apply(Connection& daemon, CommandLine options) {
  std::string text;
  std::FILE* in = options.config_file == "-" ? stdin : std::fopen(options.config_file.c_str(), "r");
  if (in == nullptr) {
    std::fprintf(stderr, "epairctl: cannot read %s: %s\n", options.config_file.c_str(), std::strerror(errno));
    return 1;
  }
  char chunk[4096];
  for (std::size_t n; (n = std::fread(chunk, 1, sizeof chunk, in)) > 0;) text.append(chunk, n);
  const bool failed_read = std::ferror(in) != 0;
  if (in != stdin) std::fclose(in);
  if (failed_read) {
    std::fprintf(stderr, "epairctl: cannot read %s\n", options.config_file.c_str());
    return 1;
  }
  options.request["text"] = text;
  const json result = result_or_exit(daemon.request(options.request), options.json_output);
  if (options.json_output) {
    std::printf("%s\n", result.dump(2).c_str());
  } else {
    for (const json& pair : result["pairs"]) {
      std::string line = pair["name"].get<std::string>() + ": " + pair["state"].get<std::string>();
      if (pair["state"] == "would create") {
        for (const json& settings : pair["settings"]) {
          std::string words;
          for (const json& action : settings["actions"]) {
            words += " " + action["action"].get<std::string>();
            if (action.contains("value")) words += " " + action["value"].get<std::string>();
          }
          line += "\n  " + settings["end"].get<std::string>() + words;
        }
      }
      std::printf("%s\n", line.c_str());
    }
  }
  for (const json& error : result["errors"]) std::fprintf(stderr, "epairctl: %s\n", error.get<std::string>().c_str());
  return result["errors"].empty() ? 0 : 1;
}

int run(int argc, char** argv) {
  const char* env_socket = std::getenv("EPAIR_SOCKET");
  const std::vector<std::string> args(argv + 1, argv + argc);
  auto parsed = epair::cli::parse_command_line(
      args, env_socket != nullptr && *env_socket != '\0' ? env_socket : "/run/epair/epaird.sock");
  if (!parsed) usage_error(parsed.status().message());
  const CommandLine& options = *parsed;
  Connection daemon(options.socket);
  switch (options.mode) {
    case Mode::kHelp:
      std::fputs(kUsage, stdout);
      return 0;
    case Mode::kCapture:
      return capture(daemon, options);
    case Mode::kStats:
      return stats(daemon, options);
    case Mode::kApply:
      return apply(daemon, options);
    case Mode::kCloners:
    case Mode::kList:
    case Mode::kGroup: {
      const json result = result_or_exit(daemon.request(options.request), options.json_output);
      if (options.json_output) {
        std::printf("%s\n", result.dump(2).c_str());
        return 0;
      }
      if (options.mode == Mode::kGroup) {
        for (const json& name : result["interfaces"]) std::printf("%s\n", name.get<std::string>().c_str());
        return 0;
      }
      std::string line;
      for (const json& name : result[options.mode == Mode::kCloners ? "cloners" : "interfaces"]) {
        line += (line.empty() ? "" : " ") + name.get<std::string>();
      }
      std::printf("%s\n", line.c_str());
      return 0;
    }
    case Mode::kAll:
    case Mode::kShow:
      print_interfaces(result_or_exit(daemon.request(options.request), options.json_output), options);
      return 0;
    case Mode::kCreate: {
      const json response = daemon.request(options.request);
      // Created, but a setting failed: the name, then the error, as ifconfig.
      if (!response.value("ok", false) && !options.json_output && response.contains("result")) {
        std::printf("%s\n", response["result"].value("name", std::string()).c_str());
        std::fflush(stdout);
      }
      const json result = result_or_exit(response, options.json_output);
      if (options.json_output) {
        std::printf("%s\n", result.dump(2).c_str());
      } else {
        std::printf("%s\n", result.value("name", std::string()).c_str());
      }
      return 0;
    }
    case Mode::kConfigure: {
      const json result = result_or_exit(daemon.request(options.request), options.json_output);
      if (options.json_output) std::printf("%s\n", result.dump(2).c_str());
      // As ifconfig NAME name NEW_NAME, the new name.
      const json& actions = options.request["actions"];
      const bool renamed = std::ranges::any_of(actions, [](const json& a) { return a["action"] == "name"; });
      if (renamed && !options.json_output) std::printf("%s\n", result.value("name", std::string()).c_str());
      return 0;
    }
  }
  return 0;
}
}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "epairctl: unexpected response from epaird: %s\n", e.what());
    return 1;
  }
}
