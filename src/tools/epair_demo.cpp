// epair-demo: two user-space IPv4 stacks, one behind each end of an epair,
// resolve each other with ARP and ping across the cable; then both ends are
// shown the way ifconfig shows them, with their counters.
#include <arpa/inet.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "echo_responder.hpp"
#include "epair/epair.hpp"
#include "epair/ethernet.hpp"

namespace {

using Clock = std::chrono::steady_clock;

using epair::ethernet::kProtoIcmp;
using epair::ethernet::load_be16;
using epair::ethernet::store_be16;
constexpr std::uint16_t kEtherTypeIpv4 = epair::ethernet::kTypeIpv4;
constexpr std::uint16_t kEtherTypeArp = epair::ethernet::kTypeArp;
using epair::ethernet::internet_checksum;
using epair::tools::kIcmpEchoReply;
using epair::tools::kIcmpEchoRequest;
constexpr std::size_t kEthernetHeader = epair::ethernet::kHeaderSize;
constexpr std::size_t kIpHeader = epair::tools::kIpHeaderSize;
constexpr std::size_t kIcmpHeader = 8;
constexpr std::size_t kPingPayload = 56;

std::string ip_text(std::uint32_t ip) {
  in_addr addr{htonl(ip)};
  char text[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &addr, text, sizeof text);
  return text;
}

// A tiny host: answers ARP and ICMP echo, and sends pings of its own.
class Host {
 public:
  Host(epair::Engine& engine, std::shared_ptr<epair::Interface> ifp, std::uint32_t ip)
      : engine_(engine), ifp_(std::move(ifp)), ip_(ip), mac_(ifp_->mac()) {
    epair::CallbackEndpoint::attach_to(*ifp_, [this](epair::Interface&, std::span<epair::Frame* const> burst) {
      for (epair::Frame* frame : burst) receive(frame);
    });
  }

  std::optional<epair::MacAddress> resolve(std::uint32_t target, std::chrono::milliseconds timeout) {
    send_arp(1, epair::MacAddress{{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}, epair::MacAddress{}, target);
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, timeout, [&] { return neighbour_ip_ == target; });
    if (neighbour_ip_ != target) return std::nullopt;
    return neighbour_mac_;
  }

  // Returns the round-trip time, or nullopt on timeout.
  std::optional<std::chrono::nanoseconds> ping(std::uint16_t seq, std::chrono::milliseconds timeout) {
    epair::Frame* frame = engine_.pool().alloc();
    if (frame == nullptr) return std::nullopt;
    std::uint8_t* p = frame->append(kEthernetHeader + kIpHeader + kIcmpHeader + kPingPayload);
    write_ethernet(p, neighbour_mac_, kEtherTypeIpv4);
    std::uint8_t* icmp = write_ip(p + kEthernetHeader, neighbour_ip_, kIcmpHeader + kPingPayload);
    icmp[0] = kIcmpEchoRequest;
    icmp[1] = 0;
    store_be16(icmp + 2, 0);
    store_be16(icmp + 4, 0x4550);  // identifier "EP"
    store_be16(icmp + 6, seq);
    for (std::size_t i = 0; i < kPingPayload; ++i) icmp[kIcmpHeader + i] = static_cast<std::uint8_t>(i);
    store_be16(icmp + 2, internet_checksum({icmp, kIcmpHeader + kPingPayload}));
    const auto sent = Clock::now();
    {
      std::lock_guard lock(mutex_);
      last_reply_seq_ = -1;
    }
    if (ifp_->transmit(frame)) return std::nullopt;
    std::unique_lock lock(mutex_);
    if (!changed_.wait_for(lock, timeout, [&] { return last_reply_seq_ == seq; })) return std::nullopt;
    return last_reply_at_ - sent;
  }

 private:
  void write_ethernet(std::uint8_t* p, const epair::MacAddress& dst, std::uint16_t type) const {
    std::memcpy(p, dst.bytes.data(), 6);
    std::memcpy(p + 6, mac_.bytes.data(), 6);
    store_be16(p + 12, type);
  }

  std::uint8_t* write_ip(std::uint8_t* ip, std::uint32_t dst, std::size_t payload) {
    std::memset(ip, 0, kIpHeader);
    ip[0] = 0x45;
    store_be16(ip + 2, static_cast<std::uint16_t>(kIpHeader + payload));
    store_be16(ip + 4, ip_id_++);
    ip[8] = 64;
    ip[9] = kProtoIcmp;
    const std::uint32_t src_n = htonl(ip_), dst_n = htonl(dst);
    std::memcpy(ip + 12, &src_n, 4);
    std::memcpy(ip + 16, &dst_n, 4);
    store_be16(ip + 10, internet_checksum({ip, kIpHeader}));
    return ip + kIpHeader;
  }

  void send_arp(std::uint16_t op, const epair::MacAddress& dst, const epair::MacAddress& target_mac,
                std::uint32_t target_ip) {
    epair::Frame* frame = engine_.pool().alloc();
    if (frame == nullptr) return;
    std::uint8_t* p = frame->append(kEthernetHeader + 28);
    write_ethernet(p, dst, kEtherTypeArp);
    std::uint8_t* arp = p + kEthernetHeader;
    store_be16(arp, 1);
    store_be16(arp + 2, kEtherTypeIpv4);
    arp[4] = 6;
    arp[5] = 4;
    store_be16(arp + 6, op);
    const std::uint32_t sender = htonl(ip_), target = htonl(target_ip);
    std::memcpy(arp + 8, mac_.bytes.data(), 6);
    std::memcpy(arp + 14, &sender, 4);
    std::memcpy(arp + 18, target_mac.bytes.data(), 6);
    std::memcpy(arp + 24, &target, 4);
    (void)ifp_->transmit(frame);
  }

  void receive(epair::Frame* frame) {
    const std::uint8_t* p = frame->data();
    if (frame->size() >= kEthernetHeader + 28 && load_be16(p + 12) == kEtherTypeArp) {
      receive_arp(p + kEthernetHeader);
    } else if (frame->size() >= kEthernetHeader + kIpHeader + kIcmpHeader && load_be16(p + 12) == kEtherTypeIpv4 &&
               p[kEthernetHeader + 9] == kProtoIcmp) {
      receive_icmp(frame);
      return;  // receive_icmp() consumed the frame
    }
    frame->release();
  }

  void receive_arp(const std::uint8_t* arp) {
    std::uint32_t sender, target;
    std::memcpy(&sender, arp + 14, 4);
    std::memcpy(&target, arp + 24, 4);
    sender = ntohl(sender);
    target = ntohl(target);
    if (target != ip_) return;
    epair::MacAddress sender_mac;
    std::memcpy(sender_mac.bytes.data(), arp + 8, 6);
    {
      std::lock_guard lock(mutex_);
      neighbour_ip_ = sender;
      neighbour_mac_ = sender_mac;
    }
    changed_.notify_all();
    if (load_be16(arp + 6) == 1) send_arp(2, sender_mac, sender_mac, sender);
  }

  void receive_icmp(epair::Frame* frame) {
    // A request is turned around in place: the frame goes back out.
    if (epair::tools::answer_echo(frame->data(), frame->size(), ip_)) {
      (void)ifp_->transmit(frame);
      return;
    }
    const std::uint8_t* icmp = frame->data() + kEthernetHeader + kIpHeader;
    const std::size_t icmp_size = frame->size() - kEthernetHeader - kIpHeader;
    if (icmp[0] == kIcmpEchoReply && internet_checksum({icmp, icmp_size}) == 0) {
      {
        std::lock_guard lock(mutex_);
        last_reply_seq_ = load_be16(icmp + 6);
        last_reply_at_ = Clock::now();
      }
      changed_.notify_all();
    }
    frame->release();
  }

  epair::Engine& engine_;
  std::shared_ptr<epair::Interface> ifp_;
  const std::uint32_t ip_;
  const epair::MacAddress mac_;
  std::uint16_t ip_id_ = 1;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::uint32_t neighbour_ip_ = 0;
  epair::MacAddress neighbour_mac_;
  int last_reply_seq_ = -1;
  Clock::time_point last_reply_at_;
};

void usage(std::FILE* out) {
  std::fprintf(out,
               "usage: epair-demo [-c COUNT] [-i INTERVAL_MS]\n"
               "\n"
               "Creates an epair in-process, puts a small IPv4 host behind each end\n"
               "(10.0.0.1 on epair0a, 10.0.0.2 on epair0b), resolves 10.0.0.2 with ARP,\n"
               "pings it COUNT times (default 5) every INTERVAL_MS (default 100), and\n"
               "prints both ends as ifconfig does, with their counters.\n"
               "Exits 0 when every ping was answered.\n");
}

bool parse_number(const char* text, long low, long high, long& out) {
  char* end = nullptr;
  const long value = std::strtol(text, &end, 10);
  if (end == text || *end != '\0' || value < low || value > high) return false;
  out = value;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  long count = 5, interval_ms = 100;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      usage(stdout);
      return 0;
    }
    if ((arg == "-c" || arg == "-i") && i + 1 == argc) {
      std::fprintf(stderr, "epair-demo: option %s needs a value\n", arg.c_str());
      return 2;
    }
    if (arg == "-c" || arg == "-i") {
      long& target = arg == "-c" ? count : interval_ms;
      if (!parse_number(argv[++i], arg == "-c" ? 1 : 0, 100000, target)) {
        std::fprintf(stderr, "epair-demo: invalid value for %s: %s\n", arg.c_str(), argv[i]);
        return 2;
      }
      continue;
    }
    std::fprintf(stderr, "epair-demo: unknown argument: %s (try --help)\n", arg.c_str());
    return 2;
  }

  epair::Engine engine;
  auto created = engine.create("epair");
  if (!created) {
    std::fprintf(stderr, "epair-demo: %s\n", created.status().message().c_str());
    return 1;
  }
  std::printf("ifconfig epair create\n%s\n", created->c_str());
  auto a = engine.find("epair0a");
  auto b = engine.find("epair0b");
  (void)a->set_up(true);
  (void)b->set_up(true);
  const std::uint32_t ip_a = 0x0a000001, ip_b = 0x0a000002;
  Host host_a(engine, a, ip_a);
  Host host_b(engine, b, ip_b);

  auto mac = host_a.resolve(ip_b, std::chrono::seconds(1));
  if (!mac) {
    std::fprintf(stderr, "epair-demo: no ARP reply from %s\n", ip_text(ip_b).c_str());
    return 1;
  }
  std::printf("arp: %s is at %s on epair0a\n\n", ip_text(ip_b).c_str(), mac->to_string().c_str());
  std::printf("PING %s (%s) from %s: %zu data bytes\n", ip_text(ip_b).c_str(), ip_text(ip_b).c_str(),
              ip_text(ip_a).c_str(), kPingPayload);
  long received = 0;
  double min_ms = 1e9, max_ms = 0, sum_ms = 0;
  for (long seq = 0; seq < count; ++seq) {
    if (seq > 0) std::this_thread::sleep_for(std::chrono::milliseconds(interval_ms));
    auto rtt = host_a.ping(static_cast<std::uint16_t>(seq), std::chrono::seconds(1));
    if (!rtt) {
      std::printf("Request timeout for icmp_seq %ld\n", seq);
      continue;
    }
    const double ms = std::chrono::duration<double, std::milli>(*rtt).count();
    ++received;
    min_ms = std::min(min_ms, ms);
    max_ms = std::max(max_ms, ms);
    sum_ms += ms;
    std::printf("%zu bytes from %s: icmp_seq=%ld ttl=64 time=%.3f ms\n", kIcmpHeader + kPingPayload,
                ip_text(ip_b).c_str(), seq, ms);
  }
  std::printf("\n--- %s ping statistics ---\n", ip_text(ip_b).c_str());
  std::printf("%ld packets transmitted, %ld packets received, %.1f%% packet loss\n", count, received,
              100.0 * static_cast<double>(count - received) / static_cast<double>(count));
  if (received > 0) {
    std::printf("round-trip min/avg/max = %.3f/%.3f/%.3f ms\n", min_ms, sum_ms / static_cast<double>(received), max_ms);
  }

  std::printf("\n");
  for (const auto& [ifp, ip] : {std::pair{a, ip_a}, std::pair{b, ip_b}}) {
    const std::string inet = "\tinet " + ip_text(ip) + " netmask 0xffffff00 broadcast 10.0.0.255";
    std::printf("%s", epair::format_ifconfig(*ifp, std::span(&inet, 1)).c_str());
    std::printf("%s", epair::format_counters(ifp->counters()).c_str());
  }
  if (auto status = engine.destroy("epair0a"); !status) {
    std::fprintf(stderr, "epair-demo: %s\n", status.message().c_str());
    return 1;
  }
  std::printf("\nifconfig epair0a destroy\n");
  return received == count ? 0 : 1;
}
