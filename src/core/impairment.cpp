// The impairment's words (parse and format) and its decisions (the model).
#include "epair/impairment.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <numbers>
#include <vector>

#include "epair/words.hpp"

namespace epair {

namespace {

Status bad(std::string message) { return {EINVAL, "impair: " + std::move(message)}; }

struct Unit {
  std::string_view name;
  double scale;
};

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

// A non-negative number followed by one of units (case-insensitive) or by
// nothing (bare_scale). Returns the scaled value or an error naming what.
Result<double> parse_quantity(std::string_view what, std::string_view text, std::span<const Unit> units,
                              double bare_scale, std::string_view example) {
  if (text.starts_with('-')) return bad(std::string(what) + " cannot be negative: '" + std::string(text) + "'");
  double value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || text.empty() || !std::isfinite(value)) {
    return bad("invalid " + std::string(what) + " '" + std::string(text) + "' (e.g. " + std::string(example) + ")");
  }
  const std::string_view unit = text.substr(static_cast<std::size_t>(end - text.data()));
  if (unit.empty()) return value * bare_scale;
  for (const Unit& u : units) {
    if (iequals(unit, u.name)) return value * u.scale;
  }
  return bad("unknown unit '" + std::string(unit) + "' in " + std::string(what) + " '" + std::string(text) +
             "' (e.g. " + std::string(example) + ")");
}

constexpr Unit kRateUnits[] = {{"bit", 1},
                               {"kbit", 1e3},
                               {"mbit", 1e6},
                               {"gbit", 1e9},
                               {"tbit", 1e12},
                               {"kibit", 1024.0},
                               {"mibit", 1048576.0},
                               {"gibit", 1073741824.0},
                               {"tibit", 0x1p40},
                               {"bps", 8},
                               {"kbps", 8e3},
                               {"mbps", 8e6},
                               {"gbps", 8e9},
                               {"tbps", 8e12},
                               {"kibps", 8 * 1024.0},
                               {"mibps", 8 * 1048576.0},
                               {"gibps", 8 * 1073741824.0}};
constexpr Unit kSizeUnits[] = {{"b", 1},
                               {"k", 1024},
                               {"kb", 1024},
                               {"m", 1048576},
                               {"mb", 1048576},
                               {"g", 1073741824.0},
                               {"gb", 1073741824.0},
                               {"kbit", 1024 / 8.0},
                               {"mbit", 1048576 / 8.0},
                               {"gbit", 1073741824.0 / 8}};
constexpr Unit kTimeUnits[] = {{"s", 1e9},  {"sec", 1e9},  {"secs", 1e9},  {"ms", 1e6}, {"msec", 1e6}, {"msecs", 1e6},
                               {"us", 1e3}, {"usec", 1e3}, {"usecs", 1e3}, {"ns", 1},   {"nsec", 1},   {"nsecs", 1}};

Result<std::uint64_t> parse_time(std::string_view what, std::string_view text) {
  auto ns = parse_quantity(what, text, kTimeUnits, 1e3, "20ms, 500us");
  if (!ns) return ns.status();
  if (*ns > static_cast<double>(kMaxImpairmentDelayNs))
    return bad(std::string(what) + " over 60s: '" + std::string(text) + "'");
  return static_cast<std::uint64_t>(std::llround(*ns));
}

Result<double> parse_percent(std::string_view what, std::string_view text) {
  if (text.starts_with('-')) return bad(std::string(what) + " cannot be negative: '" + std::string(text) + "'");
  if (!text.ends_with('%')) {
    return bad(std::string(what) + " takes a percentage, e.g. 1%: '" + std::string(text) + "'");
  }
  auto value = parse_quantity(what, text.substr(0, text.size() - 1), {}, 1, "1%, 0.01%");
  if (!value) return bad(std::string(what) + ": invalid percentage '" + std::string(text) + "'");
  if (*value > 100) return bad(std::string(what) + " " + std::string(text) + " is over 100%");
  return *value;
}

Result<std::uint64_t> parse_count(std::string_view what, std::string_view text, std::uint64_t low, std::uint64_t high) {
  return parse_whole_number("impair: ", what, text, low, high);
}

bool is_number(std::string_view text) {
  return !text.empty() && (std::isdigit(static_cast<unsigned char>(text[0])) != 0 || text[0] == '.');
}

std::string shortest(double value) {
  char buffer[32];
  const auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
  return {buffer, static_cast<std::size_t>(end - buffer)};
}

// The largest unit that divides value exactly.
std::string with_unit(std::uint64_t value, std::span<const std::pair<std::uint64_t, std::string_view>> units) {
  for (const auto& [scale, name] : units) {
    if (value != 0 && value % scale == 0) return std::to_string(value / scale) + std::string(name);
  }
  return std::to_string(value) + std::string(units.back().second);
}

constexpr std::pair<std::uint64_t, std::string_view> kRateNames[] = {
    {1'000'000'000'000, "tbit"}, {1'000'000'000, "gbit"}, {1'000'000, "mbit"}, {1'000, "kbit"}, {1, "bit"}};
constexpr std::pair<std::uint64_t, std::string_view> kSizeNames[] = {
    {1u << 30, "g"}, {1u << 20, "m"}, {1u << 10, "k"}, {1, "b"}};
constexpr std::pair<std::uint64_t, std::string_view> kTimeNames[] = {
    {1'000'000'000, "s"}, {1'000'000, "ms"}, {1'000, "us"}, {1, "ns"}};

std::string_view distribution_name(DelayDistribution d) {
  switch (d) {
    case DelayDistribution::kNormal:
      return "normal";
    case DelayDistribution::kPareto:
      return "pareto";
    case DelayDistribution::kUniform:
      break;
  }
  return "uniform";
}

std::uint64_t splitmix64(std::uint64_t& x) {
  std::uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

constexpr std::uint64_t kMinBurst = 1514;

}  // namespace

bool is_impairment_clear(std::string_view text) { return text == "clear"; }

Result<ImpairmentConfig> parse_impairment(std::string_view text) { return parse_impairment(split_words(text)); }

Result<ImpairmentConfig> parse_impairment(std::span<const std::string_view> words) {
  ImpairmentConfig config;
  if (words.empty()) return bad("needs settings (rate, delay, loss...) or 'clear'");
  std::vector<std::string_view> seen;
  for (std::size_t i = 0; i < words.size(); ++i) {
    const std::string_view word = words[i];
    if (word == "clear") return bad("'clear' stands alone");
    if (std::find(seen.begin(), seen.end(), word) != seen.end()) {
      return bad("'" + std::string(word) + "' given twice");
    }
    seen.push_back(word);
    static constexpr std::string_view kKnown[] = {"rate", "burst",     "limit",   "delay",   "jitter", "distribution",
                                                  "loss", "duplicate", "corrupt", "reorder", "gap",    "seed"};
    if (std::find(std::begin(kKnown), std::end(kKnown), word) == std::end(kKnown)) {
      return bad("unknown setting '" + std::string(word) + "'");
    }
    if (i + 1 >= words.size()) return bad("'" + std::string(word) + "' needs a value");
    const std::string_view value = words[++i];
    if (word == "rate") {
      auto bps = parse_quantity("rate", value, kRateUnits, 1, "100mbit, 1gbit");
      if (!bps) return bps.status();
      if (*bps < 1) return bad("rate must be at least 1bit: '" + std::string(value) + "'");
      if (*bps > 1e14) return bad("rate over 100tbit: '" + std::string(value) + "'");
      config.rate_bps = static_cast<std::uint64_t>(std::llround(*bps));
    } else if (word == "burst") {
      auto bytes = parse_quantity("burst", value, kSizeUnits, 1, "32k, 1514b");
      if (!bytes) return bytes.status();
      if (*bytes < 1 || *bytes > 0x1p32) return bad("burst must be from 1b to 4g: '" + std::string(value) + "'");
      config.burst_bytes = static_cast<std::uint64_t>(std::llround(*bytes));
    } else if (word == "limit") {
      auto frames = parse_count("limit", value, 1, kMaxImpairmentLimit);
      if (!frames) return frames.status();
      config.limit = static_cast<std::uint32_t>(*frames);
    } else if (word == "delay" || word == "jitter") {
      auto ns = parse_time(word, value);
      if (!ns) return ns.status();
      (word == "delay" ? config.delay_ns : config.jitter_ns) = *ns;
    } else if (word == "distribution") {
      if (value == "uniform") {
        config.distribution = DelayDistribution::kUniform;
      } else if (value == "normal") {
        config.distribution = DelayDistribution::kNormal;
      } else if (value == "pareto") {
        config.distribution = DelayDistribution::kPareto;
      } else {
        return bad("unknown distribution '" + std::string(value) + "' (uniform, normal or pareto)");
      }
    } else if (word == "loss") {
      if (value == "gemodel") {
        config.gemodel = true;
        double* fields[] = {&config.ge_p_percent, &config.ge_r_percent, &config.ge_1h_percent, &config.ge_1k_percent};
        static constexpr std::string_view kNames[] = {"gemodel p", "gemodel r", "gemodel 1-h", "gemodel 1-k"};
        std::size_t n = 0;
        for (; n < 4 && i + 1 < words.size() && is_number(words[i + 1]); ++n) {
          auto percent = parse_percent(kNames[n], words[++i]);
          if (!percent) return percent.status();
          *fields[n] = *percent;
        }
        if (n == 0) return bad("'loss gemodel' needs p, e.g. loss gemodel 1% 10% 100% 0%");
      } else {
        std::string_view percent_text = value;
        if (value == "random") {
          if (i + 1 >= words.size()) return bad("'loss random' needs a percentage");
          percent_text = words[++i];
        }
        auto percent = parse_percent("loss", percent_text);
        if (!percent) return percent.status();
        config.loss_percent = *percent;
      }
    } else if (word == "duplicate" || word == "corrupt" || word == "reorder") {
      auto percent = parse_percent(word, value);
      if (!percent) return percent.status();
      (word == "duplicate" ? config.duplicate_percent
       : word == "corrupt" ? config.corrupt_percent
                           : config.reorder_percent) = *percent;
    } else if (word == "gap") {
      auto gap = parse_count("gap", value, 1, UINT32_MAX);
      if (!gap) return gap.status();
      config.gap = static_cast<std::uint32_t>(*gap);
    } else {
      auto seed = parse_count("seed", value, 0, UINT64_MAX);
      if (!seed) return seed.status();
      config.seed = *seed;
    }
  }
  const auto given = [&](std::string_view w) { return std::find(seen.begin(), seen.end(), w) != seen.end(); };
  if (given("burst") && config.rate_bps == 0) return bad("'burst' needs a rate");
  if (given("jitter") && config.delay_ns == 0) return bad("'jitter' needs a delay");
  if (given("distribution") && config.jitter_ns == 0) return bad("'distribution' needs a jitter");
  if (given("gap") && !given("reorder")) return bad("'gap' needs reorder");
  if (given("reorder") && config.delay_ns == 0) {
    return bad("'reorder' needs a delay (a reordered frame is one sent without it)");
  }
  if (given("reorder") && config.gap == 0) config.gap = 1;
  return config;
}

std::string format_impairment(const ImpairmentConfig& c) {
  std::string out;
  const auto add = [&](std::string_view word, const std::string& value) {
    if (!out.empty()) out += ' ';
    out += word;
    out += ' ';
    out += value;
  };
  if (c.rate_bps != 0) add("rate", with_unit(c.rate_bps, kRateNames));
  if (c.burst_bytes != 0) add("burst", with_unit(c.burst_bytes, kSizeNames));
  add("limit", std::to_string(c.limit));
  if (c.delay_ns != 0) add("delay", with_unit(c.delay_ns, kTimeNames));
  if (c.jitter_ns != 0) {
    add("jitter", with_unit(c.jitter_ns, kTimeNames));
    add("distribution", std::string(distribution_name(c.distribution)));
  }
  if (c.gemodel) {
    add("loss", "gemodel " + shortest(c.ge_p_percent) + "% " + shortest(c.ge_r_percent) + "% " +
                    shortest(c.ge_1h_percent) + "% " + shortest(c.ge_1k_percent) + "%");
  } else if (c.loss_percent != 0) {
    add("loss", shortest(c.loss_percent) + "%");
  }
  if (c.duplicate_percent != 0) add("duplicate", shortest(c.duplicate_percent) + "%");
  if (c.corrupt_percent != 0) add("corrupt", shortest(c.corrupt_percent) + "%");
  if (c.reorder_percent != 0 || c.gap != 0) {
    add("reorder", shortest(c.reorder_percent) + "%");
    add("gap", std::to_string(c.gap));
  }
  if (c.seed) add("seed", std::to_string(*c.seed));
  return out;
}

// --- the model ---

ImpairmentModel::ImpairmentModel(const ImpairmentConfig& config, std::uint64_t seed) : config_(config) {
  std::uint64_t x = config.seed.value_or(seed);
  for (std::uint64_t& word : state_) word = splitmix64(x);
  burst_ = config.burst_bytes;
  if (burst_ == 0) burst_ = std::max<std::uint64_t>(kMinBurst, config.rate_bps / 8 / 1000);
  tokens_ = static_cast<double>(burst_);
}

// xoshiro256**: fast, and the same sequence on every platform.
std::uint64_t ImpairmentModel::next() {
  const auto rotl = [](std::uint64_t v, int k) { return (v << k) | (v >> (64 - k)); };
  const std::uint64_t result = rotl(state_[1] * 5, 7) * 9;
  const std::uint64_t t = state_[1] << 17;
  state_[2] ^= state_[0];
  state_[3] ^= state_[1];
  state_[1] ^= state_[2];
  state_[0] ^= state_[3];
  state_[2] ^= t;
  state_[3] = rotl(state_[3], 45);
  return result;
}

double ImpairmentModel::uniform() { return static_cast<double>(next() >> 11) * 0x1p-53; }

bool ImpairmentModel::chance(double percent) { return uniform() * 100 < percent; }

// A standardised sample (mean 0; uniform in [-1, 1], the others with
// standard deviation 1), scaled by the jitter.
double ImpairmentModel::jitter_sample() {
  const double u1 = uniform();
  const double u2 = uniform();
  switch (config_.distribution) {
    case DelayDistribution::kUniform:
      return 2 * u1 - 1;
    case DelayDistribution::kNormal:
      // Box-Muller; 1 - u1 is in (0, 1].
      return std::sqrt(-2 * std::log(1 - u1)) * std::cos(2 * std::numbers::pi * u2);
    case DelayDistribution::kPareto: {
      // Shape 3, scale 1: mean 1.5, standard deviation sqrt(3)/2.
      constexpr double kShape = 3;
      const double x = 1 / std::cbrt(1 - u1);
      return (x - kShape / (kShape - 1)) / (std::sqrt(kShape) / 2);
    }
  }
  return 0;
}

// Gilbert-Elliott as netem runs it: move first, then lose in the new state.
bool ImpairmentModel::lose() {
  if (!config_.gemodel) return chance(config_.loss_percent);
  const double move = uniform();
  const double loss = uniform();
  if (!bad_state_) {
    if (move * 100 < config_.ge_p_percent) bad_state_ = true;
  } else if (move * 100 < config_.ge_r_percent) {
    bad_state_ = false;
  }
  return loss * 100 < (bad_state_ ? config_.ge_1h_percent : config_.ge_1k_percent);
}

ImpairmentModel::Decision ImpairmentModel::decide(bool for_duplicate) {
  Decision d;
  if (!for_duplicate) {
    d.lost = lose();
    d.duplicate = chance(config_.duplicate_percent);
  }
  const bool corrupt = chance(config_.corrupt_percent);
  const std::uint64_t bit = next();
  if (corrupt) d.corrupt_bit = bit;
  const bool pick = chance(config_.reorder_percent);
  if (config_.gap != 0) {
    if (reorder_count_ + 1 >= config_.gap && pick) {
      d.reordered = true;
      reorder_count_ = 0;
    } else {
      ++reorder_count_;
    }
  }
  const double z = jitter_sample();
  const double delay = static_cast<double>(config_.delay_ns) + static_cast<double>(config_.jitter_ns) * z;
  d.delay_ns = delay <= 0 ? 0 : static_cast<std::uint64_t>(delay);
  return d;
}

std::int64_t ImpairmentModel::depart(std::uint64_t wire_bytes, std::int64_t now_ns) {
  if (config_.rate_bps == 0) return now_ns;
  const double bytes_per_ns = static_cast<double>(config_.rate_bps) / 8e9;
  const std::int64_t start = std::max(now_ns, last_departure_);
  const auto full = static_cast<double>(burst_);
  tokens_ = std::min(full, tokens_ + static_cast<double>(start - bucket_time_) * bytes_per_ns);
  std::int64_t leave = start;
  const double need = std::min(static_cast<double>(wire_bytes), full);
  if (tokens_ < need) {
    leave = start + static_cast<std::int64_t>(std::ceil((need - tokens_) / bytes_per_ns));
    tokens_ = need;
  }
  tokens_ -= static_cast<double>(wire_bytes);
  bucket_time_ = leave;
  last_departure_ = leave;
  return leave;
}

}  // namespace epair
