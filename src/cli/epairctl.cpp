// epairctl: ifconfig's grammar for epairs, spoken to epaird.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

namespace {

using json = nlohmann::json;

constexpr const char* kUsage = R"(usage: epairctl [-s PATH] [--json] -C
       epairctl [-s PATH] [--json] -l
       epairctl [-s PATH] [--json] [-v] -a
       epairctl [-s PATH] [--json] [-v] IFNAME
       epairctl [-s PATH] epair|epairN create [SETTING ...]
       epairctl [-s PATH] IFNAME SETTING ...

Creates, configures and shows epair interfaces through epaird, with the
words of FreeBSD's ifconfig.

settings, applied in order:
  up | down               bring the end up or down
  mtu N                   MTU of this end (72..65535)
  ether MAC               Ethernet address
  description TEXT        description (also `descr`); -description clears it
  inet ADDR[/LEN]         add an IPv4 address inside the end's namespace
  inet6 ADDR[/LEN]        add an IPv6 address inside the end's namespace
  vnet NAME|PID           move the end into network namespace NAME (ip netns)
                          or into that of process PID
  -vnet NAME|PID          bring the end back from that namespace
  destroy                 destroy the pair (both ends)

options:
  -C                      list the interface cloners
  -l                      list the interfaces
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
    try {
      return json::parse(reply.substr(0, reply.find('\n')));
    } catch (const json::exception&) {
      unreachable("invalid response");
    }
  }

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
};

struct Options {
  std::string socket;
  bool json_output = false;
  bool verbose = false;
  bool all = false;
  bool list = false;
  bool cloners = false;
  std::vector<std::string> words;
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

void print_interfaces(const json& result, const Options& options) {
  if (options.json_output) {
    std::printf("%s\n", result.dump(2).c_str());
    return;
  }
  for (const json& ifp : result["interfaces"]) {
    std::fputs(ifp.value("ifconfig", std::string()).c_str(), stdout);
    if (options.verbose) std::fputs(ifp.value("counters_text", std::string()).c_str(), stdout);
  }
}

// The settings after the interface name, as protocol actions.
json parse_settings(const std::vector<std::string>& words, std::size_t first) {
  static const std::set<std::string> kWithValue = {"mtu",  "ether", "lladdr", "description", "descr",
                                                   "inet", "inet6", "vnet",   "-vnet"};
  json actions = json::array();
  for (std::size_t i = first; i < words.size(); ++i) {
    const std::string& word = words[i];
    if (word == "up" || word == "down" || word == "destroy") {
      actions.push_back({{"action", word}});
    } else if (word == "-description" || word == "-descr") {
      actions.push_back({{"action", "description"}, {"value", ""}});
    } else if (kWithValue.contains(word)) {
      if (i + 1 >= words.size()) usage_error("'" + word + "' needs a value");
      std::string verb = word == "descr" ? "description" : word == "lladdr" ? "ether" : word;
      actions.push_back({{"action", verb}, {"value", words[++i]}});
    } else if (word == "create") {
      usage_error("'create' must follow the cloner name (epair or epairN)");
    } else {
      usage_error("unknown setting '" + word + "'");
    }
  }
  return actions;
}

int run(int argc, char** argv) {
  Options options;
  const char* env_socket = std::getenv("EPAIR_SOCKET");
  options.socket = env_socket != nullptr && *env_socket != '\0' ? env_socket : "/run/epair/epaird.sock";
  int i = 1;
  for (; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (arg == "-s" || arg == "--socket") {
      if (i + 1 >= argc) usage_error(arg + " needs a path");
      options.socket = argv[++i];
    } else if (arg.starts_with("--socket=")) {
      options.socket = arg.substr(9);
    } else if (arg == "-j" || arg == "--json") {
      options.json_output = true;
    } else if (arg == "-v") {
      options.verbose = true;
    } else if (arg == "-a") {
      options.all = true;
    } else if (arg == "-l") {
      options.list = true;
    } else if (arg == "-C") {
      options.cloners = true;
    } else if (arg.size() > 1 && arg[0] == '-' && arg != "-vnet") {
      usage_error("unknown option '" + arg + "'");
    } else {
      break;
    }
  }
  options.words.assign(argv + i, argv + argc);
  const int modes = options.all + options.list + options.cloners;
  if (modes > 1 || (modes == 1 && !options.words.empty())) usage_error("-a, -l and -C take no interface");
  if (modes == 0 && options.words.empty()) usage_error("no interface given");

  Connection daemon(options.socket);
  if (options.cloners || options.list) {
    const json result =
        result_or_exit(daemon.request({{"v", 1}, {"op", options.cloners ? "cloners" : "list"}}), options.json_output);
    if (options.json_output) {
      std::printf("%s\n", result.dump(2).c_str());
      return 0;
    }
    std::string line;
    for (const json& name : result[options.cloners ? "cloners" : "interfaces"]) {
      line += (line.empty() ? "" : " ") + name.get<std::string>();
    }
    std::printf("%s\n", line.c_str());
    return 0;
  }
  if (options.all) {
    print_interfaces(result_or_exit(daemon.request({{"v", 1}, {"op", "show"}}), options.json_output), options);
    return 0;
  }

  const std::string& name = options.words[0];
  if (options.words.size() == 1) {
    print_interfaces(result_or_exit(daemon.request({{"v", 1}, {"op", "show"}, {"name", name}}), options.json_output),
                     options);
    return 0;
  }
  if (options.words[1] == "create") {
    const json actions = parse_settings(options.words, 2);
    const json response = daemon.request({{"v", 1}, {"op", "create"}, {"name", name}, {"actions", actions}});
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
  const json actions = parse_settings(options.words, 1);
  const json response = daemon.request({{"v", 1}, {"op", "configure"}, {"name", name}, {"actions", actions}});
  const json result = result_or_exit(response, options.json_output);
  if (options.json_output) std::printf("%s\n", result.dump(2).c_str());
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
