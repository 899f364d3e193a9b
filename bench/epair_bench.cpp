// epair-bench: frames through epairs, each figure next to a baseline measured
// in the same run (a bare ring between the same two threads), because the
// machines this runs on are shared and noisy.
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "bpf.hpp"
#include "epair/epair.hpp"

namespace {

using Clock = std::chrono::steady_clock;
constexpr std::uint32_t kFrameSize = 64;
constexpr std::uint32_t kBurst = 32;

struct Options {
  double seconds = 2.0;
  bool json = false;
  bool pin = true;
  std::uint32_t latency_frames = 100000;
  std::vector<std::uint32_t> pairs = {1, 2, 4, 8};
  bool captures = true;
};

// Workers are bound to CPUs 0.. by the engine; the transmitting thread takes
// the last CPU so that it shares a core with no worker while there are two.
unsigned transmit_cpu() { return std::max(1u, std::thread::hardware_concurrency()) - 1; }

void pin_to(unsigned cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu % std::max(1u, std::thread::hardware_concurrency()), &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

// A 64-byte Ethernet frame to a unicast address; the bytes a stack would
// write anyway.
void fill(epair::Frame* frame, std::uint64_t stamp = 0) {
  static constexpr std::uint8_t kHeader[14] = {0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x88, 0xb5};
  std::uint8_t* p = frame->append(kFrameSize);
  std::memcpy(p, kHeader, sizeof kHeader);
  std::memcpy(p + 14, &stamp, sizeof stamp);
}

epair::EngineConfig engine_config(const Options& options, std::uint32_t workers) {
  epair::EngineConfig config;
  config.workers = workers;
  config.pin_workers = options.pin;
  config.host_id = 1;
  config.pool.frames = 65536;
  return config;
}

struct Link {
  std::shared_ptr<epair::Interface> a, b;
  std::atomic<std::uint64_t> delivered{0};
};

void make_links(epair::Engine& engine, std::vector<std::unique_ptr<Link>>& links, std::uint32_t count) {
  for (std::uint32_t i = 0; i < count; ++i) {
    auto link = std::make_unique<Link>();
    auto name = engine.create("epair");
    link->a = engine.find(*name);
    link->b = link->a->peer();
    (void)link->a->set_up(true);
    (void)link->b->set_up(true);
    Link* raw = link.get();
    epair::CallbackEndpoint::attach_to(*link->b, [raw](epair::Interface&, std::span<epair::Frame* const> burst) {
      raw->delivered.fetch_add(burst.size(), std::memory_order_relaxed);
      burst[0]->pool().free_bulk(burst.data(), static_cast<std::uint32_t>(burst.size()));
    });
    links.push_back(std::move(link));
  }
}

// Captures on the sending end of the first pair, each with the same
// compiled filter, drained by one reader thread as epaird's would.
struct Captures {
  std::uint32_t count = 0;
  const char* filter = "";
};

class CaptureLoad {
 public:
  CaptureLoad(epair::Engine& engine, epair::Interface& ifp, const Captures& setup) {
    if (setup.count == 0) return;
    auto filter = epair::pcap::compile_filter(setup.filter, 262144);
    if (!filter) throw std::runtime_error(filter.status().message());
    epair::CaptureConfig config;
    config.filter = *filter;
    for (std::uint32_t i = 0; i < setup.count; ++i) {
      captures_.push_back(std::make_unique<epair::Capture>(config, engine.pool().config().buffer_size));
      captures_.back()->attach(ifp);
    }
    reader_ = std::thread([this] {
      epair::CapturedFrame* frames[64];
      while (!stop_.load(std::memory_order_relaxed)) {
        bool any = false;
        for (auto& capture : captures_) {
          if (const std::size_t n = capture->read(frames)) {
            capture->release({frames, n});
            any = true;
          }
        }
        if (!any) captures_[0]->wait(std::chrono::milliseconds(1));
      }
    });
  }
  ~CaptureLoad() {
    stop_ = true;
    if (reader_.joinable()) reader_.join();
  }
  CaptureLoad(const CaptureLoad&) = delete;
  CaptureLoad& operator=(const CaptureLoad&) = delete;

 private:
  std::vector<std::unique_ptr<epair::Capture>> captures_;
  std::atomic<bool> stop_{false};
  std::thread reader_;
};

// Frames per second delivered through `pairs` pairs, transmitted from one
// thread round robin, burst frames at a time.
double run_pairs(const Options& options, std::uint32_t pairs, std::uint32_t burst, std::uint32_t workers,
                 const Captures& captures = {}) {
  epair::Engine engine(engine_config(options, workers));
  std::vector<std::unique_ptr<Link>> links;
  make_links(engine, links, pairs);
  CaptureLoad capture_load(engine, *links[0]->a, captures);
  if (options.pin) pin_to(transmit_cpu());
  epair::Frame* frames[kBurst];
  const auto measure = [&](double seconds) {
    std::uint64_t start_count = 0;
    for (auto& l : links) start_count += l->delivered.load();
    const auto start = Clock::now();
    const auto end = start + std::chrono::duration<double>(seconds);
    std::size_t next = 0;
    while (Clock::now() < end) {
      for (int round = 0; round < 64; ++round) {
        Link& link = *links[next++ % links.size()];
        if (burst == 1) {
          epair::Frame* frame = engine.pool().alloc();
          if (frame == nullptr) continue;
          fill(frame);
          (void)link.a->transmit(frame);
        } else {
          const std::uint32_t n = engine.pool().alloc_bulk(frames, burst);
          for (std::uint32_t i = 0; i < n; ++i) fill(frames[i]);
          (void)link.a->transmit_burst({frames, n});
        }
      }
    }
    std::uint64_t end_count = 0;
    for (auto& l : links) end_count += l->delivered.load();
    return static_cast<double>(end_count - start_count) / std::chrono::duration<double>(Clock::now() - start).count();
  };
  (void)measure(0.2);  // warm up: pages, caches, the worker's first wake
  const double rate = measure(options.seconds);
  // Workers may still be delivering what is queued, to callbacks that
  // count into the links, which go before the engine: detached first, no
  // callback runs after this.
  for (auto& link : links) link->b->detach();
  return rate;
}

// The baseline: the same two threads handing the same number of pointers
// through a bare single-producer single-consumer ring of the same depth.
double run_raw_ring(const Options& options) {
  epair::SpscRing<void*> ring(4096);
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> consumed{0};
  std::thread consumer([&] {
    if (options.pin) pin_to(0);
    void* out[kBurst];
    std::uint64_t local = 0;
    while (!stop.load(std::memory_order_relaxed)) {
      const std::uint32_t n = ring.dequeue_burst(out, kBurst);
      local += n;
      if ((local & 0x3ff) < n) consumed.store(local, std::memory_order_relaxed);
    }
    consumed.store(local, std::memory_order_relaxed);
  });
  if (options.pin) pin_to(transmit_cpu());
  void* in[kBurst];
  for (std::uint32_t i = 0; i < kBurst; ++i) in[i] = &in[i];
  const auto measure = [&](double seconds) {
    const std::uint64_t before = consumed.load();
    const auto start = Clock::now();
    const auto end = start + std::chrono::duration<double>(seconds);
    while (Clock::now() < end) {
      for (int round = 0; round < 64; ++round) (void)ring.enqueue_burst(in, kBurst);
    }
    return static_cast<double>(consumed.load() - before) / std::chrono::duration<double>(Clock::now() - start).count();
  };
  (void)measure(0.2);
  const double rate = measure(options.seconds);
  stop = true;
  consumer.join();
  return rate;
}

struct Latency {
  double p50_ns = 0, p99_ns = 0, max_ns = 0;
};

// One-way latency at low load: a frame every 20 us, stamped when sent and
// read when the endpoint receives it.
Latency run_latency(const Options& options) {
  epair::Engine engine(engine_config(options, 1));
  std::vector<std::unique_ptr<Link>> links;
  make_links(engine, links, 1);
  std::vector<std::int64_t> samples;
  samples.reserve(options.latency_frames);
  std::atomic<std::uint64_t> received{0};
  links[0]->b->attach(
      std::make_shared<epair::CallbackEndpoint>([&](epair::Interface&, std::span<epair::Frame* const> burst) {
        const std::int64_t now = Clock::now().time_since_epoch().count();
        for (epair::Frame* frame : burst) {
          std::int64_t sent;
          std::memcpy(&sent, frame->data() + 14, sizeof sent);
          if (samples.size() < samples.capacity()) samples.push_back(now - sent);
          frame->release();
        }
        received.fetch_add(burst.size(), std::memory_order_release);
      }));
  if (options.pin) pin_to(transmit_cpu());
  auto next = Clock::now();
  for (std::uint32_t i = 0; i < options.latency_frames; ++i) {
    next += std::chrono::microseconds(20);
    while (Clock::now() < next) {
    }
    epair::Frame* frame = engine.pool().alloc();
    if (frame == nullptr) continue;
    fill(frame, static_cast<std::uint64_t>(Clock::now().time_since_epoch().count()));
    (void)links[0]->a->transmit(frame);
  }
  const auto deadline = Clock::now() + std::chrono::seconds(2);
  while (received.load(std::memory_order_acquire) < options.latency_frames && Clock::now() < deadline) {
    std::this_thread::yield();
  }
  links[0]->b->detach();
  Latency result;
  if (samples.empty()) return result;
  std::sort(samples.begin(), samples.end());
  result.p50_ns = static_cast<double>(samples[samples.size() / 2]);
  result.p99_ns = static_cast<double>(samples[samples.size() * 99 / 100]);
  result.max_ns = static_cast<double>(samples.back());
  return result;
}

void usage(std::FILE* out) {
  std::fprintf(out,
               "usage: epair-bench [--json] [--seconds S] [--pairs N,N,...] [--latency-frames N] [--no-pin]\n"
               "                   [--no-captures]\n"
               "\n"
               "Measures 64-byte frames through epairs: one thread transmits, the engine's\n"
               "worker delivers to a callback that frees them. Reports Mpps with bursts of 32\n"
               "and frame at a time, a bare ring between the same two threads as baseline\n"
               "(ratio_to_raw = mpps_burst32 / raw_ring_mpps), one-way latency at low load,\n"
               "and the aggregate rate over several pairs.\n"
               "\n"
               "  --json              print one JSON object instead of a table\n"
               "  --seconds S         measuring time per figure (default 2)\n"
               "  --pairs LIST        pair counts for the pairs table (default 1,2,4,8)\n"
               "  --latency-frames N  frames for the latency run (default 100000)\n"
               "  --no-pin            do not bind threads to CPUs\n"
               "  --no-captures       skip the table with captures attached\n");
}

bool parse_args(int argc, char** argv, Options& options) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const auto value = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    if (arg == "--json") {
      options.json = true;
    } else if (arg == "--no-captures") {
      options.captures = false;
    } else if (arg == "--no-pin") {
      options.pin = false;
    } else if (arg == "-h" || arg == "--help") {
      usage(stdout);
      std::exit(0);
    } else if (arg == "--seconds") {
      const char* v = value();
      char* end = nullptr;
      options.seconds = v ? std::strtod(v, &end) : 0;
      if (!v || *end != '\0' || options.seconds <= 0 || options.seconds > 3600) {
        std::fprintf(stderr, "epair-bench: --seconds needs a number of seconds in (0, 3600]\n");
        return false;
      }
    } else if (arg == "--latency-frames") {
      const char* v = value();
      char* end = nullptr;
      const long n = v ? std::strtol(v, &end, 10) : 0;
      if (!v || *end != '\0' || n < 1 || n > 100'000'000) {
        std::fprintf(stderr, "epair-bench: --latency-frames needs a count from 1 to 100000000\n");
        return false;
      }
      options.latency_frames = static_cast<std::uint32_t>(n);
    } else if (arg == "--pairs") {
      const char* v = value();
      options.pairs.clear();
      std::string list = v ? v : "";
      std::size_t pos = 0;
      while (!list.empty() && pos <= list.size()) {
        const std::size_t comma = std::min(list.find(',', pos), list.size());
        char* end = nullptr;
        const std::string item = list.substr(pos, comma - pos);
        const long n = std::strtol(item.c_str(), &end, 10);
        if (item.empty() || *end != '\0' || n < 1 || n > 1024) {
          options.pairs.clear();
          break;
        }
        options.pairs.push_back(static_cast<std::uint32_t>(n));
        pos = comma + 1;
      }
      if (options.pairs.empty()) {
        std::fprintf(stderr, "epair-bench: --pairs needs a comma-separated list of counts from 1 to 1024\n");
        return false;
      }
    } else {
      std::fprintf(stderr, "epair-bench: unknown argument: %s (try --help)\n", arg.c_str());
      return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  if (!parse_args(argc, argv, options)) return 2;
  const auto progress = [&](const char* what) {
    if (!options.json) std::fprintf(stderr, "measuring %s...\n", what);
  };

  progress("bare ring baseline");
  const double raw = run_raw_ring(options) / 1e6;
  progress("one pair, bursts of 32");
  const double burst32 = run_pairs(options, 1, kBurst, 1) / 1e6;
  progress("one pair, frame at a time");
  const double single = run_pairs(options, 1, 1, 1) / 1e6;
  progress("latency");
  const Latency latency = run_latency(options);
  // The same one-pair burst run with captures attached: frames the filter
  // keeps ("ether proto 0x88b5", every frame) or none of them (IPv4 only).
  nlohmann::json capture_rows = nlohmann::json::array();
  if (options.captures) {
    progress("captures");
    const double base = run_pairs(options, 1, kBurst, 1) / 1e6;
    capture_rows.push_back({{"captures", 0}, {"filter", ""}, {"mpps", base}, {"ratio", 1.0}});
    for (std::uint32_t count : {1u, 4u}) {
      for (const char* filter : {"ether proto 0x88b5", "ip"}) {
        const double mpps = run_pairs(options, 1, kBurst, 1, {count, filter}) / 1e6;
        capture_rows.push_back({{"captures", count}, {"filter", filter}, {"mpps", mpps}, {"ratio", mpps / base}});
      }
    }
  }
  nlohmann::json pairs = nlohmann::json::array();
  const std::uint32_t workers = std::max(1u, std::thread::hardware_concurrency() - 1);
  for (std::uint32_t n : options.pairs) {
    progress(("pairs: " + std::to_string(n)).c_str());
    const double mpps = run_pairs(options, n, kBurst, workers) / 1e6;
    pairs.push_back({{"pairs", n}, {"workers", workers}, {"mpps_total", mpps}, {"mpps_per_pair", mpps / n}});
  }

  nlohmann::json result = {
      {"frame_bytes", kFrameSize},
      {"seconds_per_figure", options.seconds},
      {"cpus", std::thread::hardware_concurrency()},
      {"pinned", options.pin},
      {"raw_ring_mpps", raw},
      {"mpps_burst32", burst32},
      {"mpps_single", single},
      {"ratio_to_raw", burst32 / raw},
      {"single_ratio_to_raw", single / raw},
      {"latency_p50_ns", latency.p50_ns},
      {"latency_p99_ns", latency.p99_ns},
      {"latency_max_ns", latency.max_ns},
      {"pairs", pairs},
      {"captures", capture_rows},
  };
  if (options.json) {
    std::printf("%s\n", result.dump(2).c_str());
    return 0;
  }
  std::printf("64-byte frames, %.1f s per figure, %u CPUs%s\n\n", options.seconds, std::thread::hardware_concurrency(),
              options.pin ? ", threads pinned" : "");
  std::printf("%-36s %10s %10s\n", "", "Mpps", "vs ring");
  std::printf("%-36s %10.2f %10.2f\n", "bare ring (baseline)", raw, 1.0);
  std::printf("%-36s %10.2f %10.2f\n", "one pair, bursts of 32", burst32, burst32 / raw);
  std::printf("%-36s %10.2f %10.2f\n", "one pair, frame at a time", single, single / raw);
  std::printf("\none-way latency at 50 kpps: p50 %.0f ns, p99 %.0f ns, max %.0f ns\n\n", latency.p50_ns, latency.p99_ns,
              latency.max_ns);
  std::printf("%-8s %-8s %12s %14s\n", "pairs", "workers", "Mpps total", "Mpps per pair");
  for (const auto& row : pairs) {
    std::printf("%-8u %-8u %12.2f %14.2f\n", row["pairs"].get<unsigned>(), row["workers"].get<unsigned>(),
                row["mpps_total"].get<double>(), row["mpps_per_pair"].get<double>());
  }
  if (!capture_rows.empty()) {
    std::printf("\none pair, bursts of 32, captures on the sending end\n");
    std::printf("%-9s %-22s %8s %16s\n", "captures", "filter", "Mpps", "vs no capture");
    for (const auto& row : capture_rows) {
      std::printf("%-9u %-22s %8.2f %16.2f\n", row["captures"].get<unsigned>(),
                  row["filter"].get<std::string>().empty() ? "-" : row["filter"].get<std::string>().c_str(),
                  row["mpps"].get<double>(), row["ratio"].get<double>());
    }
  }
  return 0;
}
