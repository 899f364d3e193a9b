// epair-memif-pong: a tiny IPv4 host on memif, written with the client API
// (epair/memif_client.hpp). It connects to a memif server, such as an epair
// end after `epairctl epair0b attach memif socket PATH`, and answers ARP
// requests and pings for its address, so that a namespace behind the other
// end can ping a process that has no kernel interface at all.
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "echo_responder.hpp"
#include "epair/mac.hpp"
#include "epair/memif_client.hpp"

namespace {

volatile sig_atomic_t stop_signal = 0;

void on_signal(int signal) { stop_signal = signal; }

void usage(std::FILE* out) {
  std::fprintf(out,
               "usage: epair-memif-pong --socket PATH --inet ADDR [--id N] [--secret S] [--mac MAC]\n"
               "                        [--queues N] [--count N] [--seconds S] [--json]\n"
               "\n"
               "Connects to the memif server at PATH (@NAME: abstract) as a client and answers\n"
               "ARP requests and pings for the IPv4 address ADDR, with the Ethernet address MAC\n"
               "(default 02:70:6f:6e:67:01), on every queue granted (default 1 asked for).\n"
               "Runs until SIGINT or SIGTERM, S seconds, or N pings answered; then prints what\n"
               "it did (--json: one JSON object).\n"
               "\n"
               "  --id N       the server's interface id (default 0)\n"
               "  --secret S   the server's secret, if it has one\n"
               "\n"
               "Exit status: 0 when it stopped as asked; 1 when it could not connect or the\n"
               "server went away; 2 for a bad argument.\n");
}

[[noreturn]] void usage_error(const std::string& message) {
  std::fprintf(stderr, "epair-memif-pong: %s\n", message.c_str());
  std::exit(2);
}

long number(const std::string& option, const char* text, long low, long high) {
  char* end = nullptr;
  errno = 0;
  const long value = std::strtol(text, &end, 10);
  if (end == text || *end != '\0' || errno != 0 || value < low || value > high) {
    usage_error("invalid value for " + option + ": " + text);
  }
  return value;
}

struct Answered {
  std::uint64_t arp = 0;
  std::uint64_t pings = 0;
  std::uint64_t ignored = 0;
};

int run(int argc, char** argv) {
  epair::memif::ClientOptions options;
  options.name = "epair-memif-pong";
  std::uint32_t ip = 0;
  std::string ip_text;
  epair::MacAddress mac{{0x02, 0x70, 0x6f, 0x6e, 0x67, 0x01}};
  long count = 0, seconds = 0;
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      usage(stdout);
      return 0;
    }
    if (arg == "--json") {
      json = true;
      continue;
    }
    const bool takes_value = arg == "--socket" || arg == "--inet" || arg == "--id" || arg == "--secret" ||
                             arg == "--mac" || arg == "--queues" || arg == "--count" || arg == "--seconds";
    if (!takes_value) usage_error("unknown argument: " + arg + " (try --help)");
    if (i + 1 == argc) usage_error("option " + arg + " needs a value");
    const char* value = argv[++i];
    if (arg == "--socket") {
      options.socket = value;
    } else if (arg == "--inet") {
      in_addr address{};
      if (inet_pton(AF_INET, value, &address) != 1) usage_error(std::string("invalid IPv4 address: ") + value);
      ip = ntohl(address.s_addr);
      ip_text = value;
    } else if (arg == "--id") {
      options.id = static_cast<std::uint32_t>(number(arg, value, 0, 0xffffffffL));
    } else if (arg == "--secret") {
      options.secret = value;
    } else if (arg == "--mac") {
      auto parsed = epair::MacAddress::parse(value);
      if (!parsed || parsed->is_multicast()) usage_error(std::string("invalid unicast Ethernet address: ") + value);
      mac = *parsed;
    } else if (arg == "--queues") {
      options.queues = static_cast<std::uint16_t>(number(arg, value, 1, 255));
    } else if (arg == "--count") {
      count = number(arg, value, 1, 1L << 40);
    } else {
      seconds = number(arg, value, 1, 1L << 30);
    }
  }
  if (options.socket.empty()) usage_error("--socket PATH is required");
  if (ip == 0) usage_error("--inet ADDR is required");

  auto connected = epair::memif::Client::connect(options);
  if (!connected) {
    std::fprintf(stderr, "epair-memif-pong: %s\n", connected.status().message().c_str());
    return 1;
  }
  epair::memif::Client& client = **connected;
  std::fprintf(stderr, "epair-memif-pong: connected to %s (%u queues of %u descriptors), answering for %s\n",
               client.peer_name().c_str(), client.queues(), client.ring_size(), ip_text.c_str());

  struct sigaction action {};
  action.sa_handler = on_signal;
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);

  constexpr std::size_t kBurst = 32;
  constexpr std::uint32_t kFrameRoom = 9216;
  std::vector<std::uint8_t> room(kBurst * kFrameRoom);
  epair::memif::Packet packets[kBurst];
  for (std::size_t i = 0; i < kBurst; ++i) packets[i] = {room.data() + i * kFrameRoom, kFrameRoom, 0};
  std::span<const std::uint8_t> replies[kBurst];

  Answered answered;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (stop_signal == 0 && client.connected() && (count == 0 || static_cast<long>(answered.pings) < count) &&
         (seconds == 0 || std::chrono::steady_clock::now() < deadline)) {
    client.wait(std::chrono::milliseconds(100));
    for (std::uint16_t queue = 0; queue < client.queues(); ++queue) {
      std::size_t n;
      while ((n = client.receive(packets, queue)) != 0) {
        std::size_t out = 0;
        for (std::size_t i = 0; i < n; ++i) {
          std::uint8_t* frame = packets[i].data;
          const std::size_t size = packets[i].size;
          if (epair::tools::answer_arp(frame, size, ip, mac)) {
            ++answered.arp;
          } else if (epair::tools::answer_echo(frame, size, ip)) {
            ++answered.pings;
          } else {
            ++answered.ignored;
            continue;
          }
          replies[out++] = {frame, size};
        }
        // A reply that finds the ring full is lost, as on a wire.
        client.send({replies, out}, queue);
      }
    }
  }

  (void)client.flush(std::chrono::seconds(1));
  const epair::memif::ClientCounters c = client.counters();
  const bool lost = !client.connected();
  const nlohmann::json report = {{"peer", client.peer_name()},
                                 {"connected", !lost},
                                 {"disconnect_reason", client.disconnect_reason()},
                                 {"arp_replies", answered.arp},
                                 {"echo_replies", answered.pings},
                                 {"ignored", answered.ignored},
                                 {"received", c.received},
                                 {"sent", c.sent},
                                 {"ring_full", c.ring_full}};
  if (json) {
    std::printf("%s\n", report.dump().c_str());
  } else {
    std::printf("%llu ARP replies, %llu echo replies, %llu frames ignored; %llu received, %llu sent, %llu ring full\n",
                static_cast<unsigned long long>(answered.arp), static_cast<unsigned long long>(answered.pings),
                static_cast<unsigned long long>(answered.ignored), static_cast<unsigned long long>(c.received),
                static_cast<unsigned long long>(c.sent), static_cast<unsigned long long>(c.ring_full));
  }
  if (lost) {
    std::fprintf(stderr, "epair-memif-pong: %s\n", client.disconnect_reason().c_str());
    return 1;
  }
  return 0;
}
}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "epair-memif-pong: %s\n", error.what());
    return 1;
  }
}
