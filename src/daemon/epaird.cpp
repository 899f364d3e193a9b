// epaird: owns the epair engine and the TAP ends, serves epairctl.
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>

#include "controller.hpp"
#include "server.hpp"

namespace {

constexpr const char* kUsage = R"(usage: epaird [options]

Runs the epair daemon in the foreground: it owns the epair engine and the
devices of the ends, keeps its state under --state-dir so that a restarted
daemon re-adopts every pair, and answers epairctl on a Unix socket.

options:
  -s, --socket PATH       control socket (default /run/epair/epaird.sock)
  -d, --state-dir DIR     where state.json lives (default /var/lib/epair)
  -c, --config FILE       boot configuration in rc.conf's words
                          (cloned_interfaces, ifconfig_epairNa, ...): the
                          pairs it names that are missing are made at start;
                          default /etc/epair/rc.conf, if there
  -g, --group NAME        members of this group may change pairs (root always may)
  -r, --readers WHO       who may query: all (default) or group
  -w, --workers N         engine worker threads (default: one per CPU)
  -q, --queue-depth N     frames per receive queue (default 4096)
  -f, --frames N          frames in the pool, up to 64 KiB each (default 4096)
  -m, --mac-mode MODE     legacy (default) or stable addresses for new pairs
  -D, --delivery MODE     inline (default): a TAP reader delivers into an idle
                          peer itself; deferred: always through a worker
  -P, --datapath WAY      what carries new pairs' frames: kernel (veth ends and
                          an eBPF program; epaird does not start when the
                          kernel cannot run it), tap (TAP ends read by the
                          engine) or auto (kernel where it can, else tap,
                          with a log line saying why); default auto
  -b, --busy-poll USEC    one thread reads every TAP end and spins USEC
                          microseconds after the last frame before it sleeps:
                          lower latency for a CPU kept busy (default 0: a
                          sleeping reader thread per end)
  -M, --metrics WHERE     serve Prometheus metrics over HTTP at /metrics:
                          HOST:PORT on a loopback address (127.0.0.1:9474,
                          [::1]:9474) or unix:PATH (default: not served)
  -l, --log-level LEVEL   trace, debug, info (default), warn, error
  -h, --help              this text
  -V, --version           the version

SIGTERM or SIGINT stops the daemon; the pairs and their devices stay and the
next epaird takes them over. See epaird(8) and docs/protocol.md.
)";

bool parse_u32(const char* text, std::uint32_t& out) {
  const char* end = text + std::strlen(text);
  auto [ptr, error] = std::from_chars(text, end, out);
  return error == std::errc{} && ptr == end && ptr != text;
}

[[noreturn]] void fail(const std::string& message, int status = 1) {
  std::fprintf(stderr, "epaird: %s\n", message.c_str());
  std::exit(status);
}

[[noreturn]] void usage_error(const std::string& message) { fail(message + " (see --help)", 2); }

// What the command line says.
struct Options {
  std::filesystem::path socket_path = "/run/epair/epaird.sock";
  std::filesystem::path state_dir = "/var/lib/epair";
  epair::daemon::AccessPolicy policy;
  epair::EngineConfig engine = default_engine();
  std::string log_level = "info";
  std::string readers = "all";
  std::chrono::microseconds busy_poll{0};
  std::string metrics;
  epair::daemon::DatapathChoice datapath = epair::daemon::DatapathChoice::kAuto;
  std::string config = "/etc/epair/rc.conf";
  bool config_given = false;

  static epair::EngineConfig default_engine() {
    epair::EngineConfig engine;
    engine.carrier_follows_peer = true;
    engine.deliver_inline = true;
    engine.pool.frames = 4096;
    // A TSO segment (64 KiB) plus Ethernet and VLAN headers, behind the headroom.
    engine.pool.headroom = 128;
    engine.pool.buffer_size = 65536 + 256 + engine.pool.headroom;
    return engine;
  }
};

std::uint32_t number_option(const char* name, std::uint32_t low, std::uint32_t high, const std::string& range = {}) {
  std::uint32_t value = 0;
  if (!parse_u32(optarg, value) || value < low || value > high) {
    usage_error(std::string("invalid --") + name + " '" + optarg + "'" + (range.empty() ? "" : " (" + range + ")"));
  }
  return value;
}

// One option of getopt_long's; c is its short name.
void apply_option(int c, char** argv, Options& o) {
  using epair::MacMode;
  switch (c) {
    case 's':
      o.socket_path = optarg;
      break;
    case 'd':
      o.state_dir = optarg;
      break;
    case 'c':
      o.config = optarg;
      o.config_given = true;
      break;
    case 'g': {
      const group* g = ::getgrnam(optarg);
      if (g == nullptr) usage_error(std::string("unknown group '") + optarg + "'");
      o.policy.group = g->gr_gid;
      break;
    }
    case 'r':
      o.readers = optarg;
      break;
    case 'w':
      o.engine.workers = number_option("workers", 1, 1024);
      break;
    case 'q':
      o.engine.queue_depth = number_option("queue-depth", 2, 1u << 20);
      break;
    case 'f':
      o.engine.pool.frames = number_option("frames", 64, 1u << 20);
      break;
    case 'm':
      if (std::strcmp(optarg, "legacy") != 0 && std::strcmp(optarg, "stable") != 0) {
        usage_error(std::string("invalid --mac-mode '") + optarg + "' (legacy or stable)");
      }
      o.engine.mac_mode = std::strcmp(optarg, "legacy") == 0 ? MacMode::kLegacy : MacMode::kStable;
      break;
    case 'D':
      if (std::strcmp(optarg, "inline") != 0 && std::strcmp(optarg, "deferred") != 0) {
        usage_error(std::string("invalid --delivery '") + optarg + "' (inline or deferred)");
      }
      o.engine.deliver_inline = std::strcmp(optarg, "inline") == 0;
      break;
    case 'b':
      o.busy_poll =
          std::chrono::microseconds(number_option("busy-poll", 0, 10'000'000, "microseconds, at most 10000000"));
      break;
    case 'M':
      o.metrics = optarg;
      break;
    case 'P':
      if (std::strcmp(optarg, "kernel") == 0) {
        o.datapath = epair::daemon::DatapathChoice::kKernel;
      } else if (std::strcmp(optarg, "tap") == 0) {
        o.datapath = epair::daemon::DatapathChoice::kTap;
      } else if (std::strcmp(optarg, "auto") == 0) {
        o.datapath = epair::daemon::DatapathChoice::kAuto;
      } else {
        usage_error(std::string("invalid --datapath '") + optarg + "' (kernel, tap or auto)");
      }
      break;
    case 'l':
      o.log_level = optarg;
      break;
    case 'h':
      std::fputs(kUsage, stdout);
      std::exit(0);
    case 'V':
      std::printf("epaird %s\n", EPAIR_VERSION);
      std::exit(0);
    case ':':
      usage_error(std::string("option ") + argv[optind - 1] + " needs a value");
    default:
      usage_error(std::string("unknown option ") + argv[optind - 1]);
  }
}

Options parse_options(int argc, char** argv) {
  static const option options[] = {{"socket", required_argument, nullptr, 's'},
                                   {"state-dir", required_argument, nullptr, 'd'},
                                   {"config", required_argument, nullptr, 'c'},
                                   {"group", required_argument, nullptr, 'g'},
                                   {"readers", required_argument, nullptr, 'r'},
                                   {"workers", required_argument, nullptr, 'w'},
                                   {"queue-depth", required_argument, nullptr, 'q'},
                                   {"frames", required_argument, nullptr, 'f'},
                                   {"mac-mode", required_argument, nullptr, 'm'},
                                   {"delivery", required_argument, nullptr, 'D'},
                                   {"busy-poll", required_argument, nullptr, 'b'},
                                   {"metrics", required_argument, nullptr, 'M'},
                                   {"datapath", required_argument, nullptr, 'P'},
                                   {"log-level", required_argument, nullptr, 'l'},
                                   {"help", no_argument, nullptr, 'h'},
                                   {"version", no_argument, nullptr, 'V'},
                                   {nullptr, 0, nullptr, 0}};
  Options o;
  opterr = 0;
  for (int c; (c = getopt_long(argc, argv, ":s:d:c:g:r:w:q:f:m:D:b:M:P:l:hV", options, nullptr)) != -1;) {
    apply_option(c, argv, o);
  }
  if (optind != argc) usage_error(std::string("unexpected argument '") + argv[optind] + "'");
  if (o.readers == "group") {
    o.policy.readers_all = false;
  } else if (o.readers != "all") {
    usage_error("invalid --readers '" + o.readers + "' (all or group)");
  }
  return o;
}

void start_logging(const std::string& log_level) {
  const auto level = spdlog::level::from_str(log_level);
  if (level == spdlog::level::off && log_level != "off") usage_error("invalid --log-level '" + log_level + "'");
  auto logger = spdlog::stderr_color_mt("epaird");
  spdlog::set_default_logger(logger);
  spdlog::set_level(level);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
}

// Each end holds a TAP and an event descriptor: 256 pairs need more than
// the soft limit of 1024 that systemd and most shells give.
void raise_file_limit() {
  if (rlimit files{}; ::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &files);
  }
}

// One daemon per state directory: a second would fight over the devices.
// The lock lasts as long as the process.
void lock_state_dir(const std::filesystem::path& state_dir) {
  std::error_code ec;
  std::filesystem::create_directories(state_dir, ec);
  if (ec) fail("cannot create " + state_dir.string() + ": " + ec.message());
  ::chmod(state_dir.c_str(), 0700);
  const std::string lock_path = (state_dir / "epaird.lock").string();
  const int lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd < 0) fail("cannot open " + lock_path + ": " + std::strerror(errno));
  if (::flock(lock_fd, LOCK_EX | LOCK_NB) != 0) fail("another epaird uses " + state_dir.string());
}

// The boot configuration, read whole before the daemon changes anything:
// the default file may be absent, one named with --config may not; a file
// that does not read says why, line by line, and epaird does not start.
epair::daemon::BootConfig read_boot_config(const Options& o) {
  std::ifstream in(o.config);
  if (!in) {
    if (o.config_given) fail("cannot read " + o.config + ": " + std::strerror(errno));
    return {};
  }
  std::stringstream text;
  text << in.rdbuf();
  auto config = epair::daemon::parse_boot_config(text.str(), o.config);
  if (!config.errors.empty()) {
    for (const std::string& error : config.errors) std::fprintf(stderr, "epaird: %s\n", error.c_str());
    std::exit(1);
  }
  return config;
}

}  // namespace

// The daemon's life, in this order:
// 1. Options and logging; root is checked after them, so that --help and
//    a bad option answer anyone.
// 2. The boot configuration read, the state directory locked for this
//    daemon alone.
// 3. The stop signals blocked, before the engine's workers and the TAP
//    readers exist, so that they inherit the mask and a SIGTERM reaches
//    the server's signalfd.
// 4. The controller and the server; the socket listens before the data
//    path opens (so that a second epaird fails before it touches the
//    hidden namespace) and the pairs of the last run are re-adopted; the
//    pairs of the boot configuration that are missing are made; the
//    server runs until a signal.
int main(int argc, char** argv) {
  using namespace epair;
  const Options o = parse_options(argc, argv);
  start_logging(o.log_level);
  if (::geteuid() != 0) fail("must run as root (TAP devices and namespaces need CAP_NET_ADMIN)");
  raise_file_limit();

  const daemon::BootConfig boot = read_boot_config(o);
  lock_state_dir(o.state_dir);

  daemon::block_stop_signals();

  try {
    daemon::Controller controller({o.engine, o.state_dir / "state.json", o.datapath, o.state_dir / "hidden.netns",
                                   o.busy_poll, o.state_dir / "counters"});
    daemon::Server server(controller, {o.socket_path, o.policy, o.metrics});
    if (Status s = server.listen(); !s) fail(s.message());
    if (Status s = controller.open_datapath(); !s) fail(s.message());
    controller.restore();
    (void)controller.apply_boot_config(boot, false);
    if (Status s = server.run(); !s) fail(s.message());
  } catch (const std::exception& e) {
    fail(e.what());
  }
  return 0;
}
