// Shaping and impairing what one end transmits: a token bucket, a queue
// limit, delay with jitter, loss (random or Gilbert-Elliott), duplication,
// single-bit corruption and reordering, in the words of Linux's tc netem.
//
// The pipeline a frame goes through, after step 3 of the transmit path
// (capture taps see every frame the stack sent, before any impairment):
//
//   loss -> duplicate -> corrupt -> queue limit (tail drop, oqdrops)
//        -> reorder? yes: crosses now, ahead of the frames that wait
//                    no:  token bucket, then delay + jitter, then crosses
//
// A frame crosses at its time with steps 4-7 of the transmit path (peer
// checks, counters, the peer's receive queue). Frames that wait keep their
// order unless reordering is asked for: a jittered time earlier than the
// frame ahead's is moved up to it.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "epair/status.hpp"

namespace epair {

enum class DelayDistribution { kUniform, kNormal, kPareto };

/// The settings of one end's impairment. Percentages are kept as given
/// (0 to 100), so that format_impairment() prints back what was parsed.
struct ImpairmentConfig {
  /// Token bucket rate in bit/s; 0 for none. Counted in bytes on the wire:
  /// a GSO frame as the segments it stands for, each with its headers.
  std::uint64_t rate_bps = 0;
  /// Bucket depth in bytes; 0 for the default (1 ms at the rate, at least
  /// one 1514-byte frame). A frame larger than the bucket leaves when the
  /// bucket is full, taking it below zero.
  std::uint64_t burst_bytes = 0;
  /// Frames the impairment holds at once (waiting for tokens or for their
  /// delay); the next one is dropped and counted in oqdrops. tc netem's 1000.
  std::uint32_t limit = 1000;
  std::uint64_t delay_ns = 0;
  /// Uniform: delay +- jitter. Normal and pareto: jitter is the standard
  /// deviation around delay (pareto: shape 3, long tail above). A negative
  /// result is no delay.
  std::uint64_t jitter_ns = 0;
  DelayDistribution distribution = DelayDistribution::kUniform;
  /// Random loss, or with gemodel the Gilbert-Elliott chain: p (good to
  /// bad), r (bad to good), 1-h (loss in bad), 1-k (loss in good).
  double loss_percent = 0;
  bool gemodel = false;
  double ge_p_percent = 0;
  double ge_r_percent = 100;
  double ge_1h_percent = 100;
  double ge_1k_percent = 0;
  double duplicate_percent = 0;
  double corrupt_percent = 0;
  /// A frame picked (once gap-1 frames went the normal way since the last
  /// one) skips the token bucket and the delay. Needs a delay.
  double reorder_percent = 0;
  std::uint32_t gap = 0;
  /// Same seed, same frames in the same order: the same decisions.
  std::optional<std::uint64_t> seed;

  bool operator==(const ImpairmentConfig&) const = default;
};

inline constexpr std::uint32_t kMaxImpairmentLimit = 1'000'000;
inline constexpr std::uint64_t kMaxImpairmentDelayNs = 60'000'000'000ULL;

/// Parses the words after `epairctl NAME impair` (e.g. {"rate", "100mbit",
/// "delay", "20ms"}). Units are tc's: rates bit, kbit, mbit, gbit, tbit
/// (and kibit...; bps, kbps... for bytes), sizes b, k, m, g (1024s), times
/// s, ms, us, ns (a bare number is microseconds), percentages with '%'.
/// "clear" alone is not parsed here (see is_impairment_clear()). EINVAL
/// with one line naming the offending word; nothing else to undo.
Result<ImpairmentConfig> parse_impairment(std::span<const std::string_view> words);
/// The same for the words of one string separated by spaces.
Result<ImpairmentConfig> parse_impairment(std::string_view text);
bool is_impairment_clear(std::string_view text);

/// The settings in parse_impairment()'s words, each explicit one once:
/// parsing the result gives config back.
std::string format_impairment(const ImpairmentConfig& config);

/// What an impairment did, all monotonic except held.
struct ImpairmentCounters {
  std::uint64_t lost = 0;
  std::uint64_t duplicated = 0;
  std::uint64_t corrupted = 0;
  std::uint64_t reordered = 0;
  /// Tail drops at the limit (also in the interface's oqdrops).
  std::uint64_t dropped = 0;
  /// Frames that waited for tokens or a delay before crossing.
  std::uint64_t delayed = 0;
  /// Frames held now.
  std::uint64_t held = 0;
};

/// The decisions of an impairment, without frames or clocks: what the
/// engine asks for each frame, and what the statistical tests check.
/// Not thread-safe; the engine calls it under a lock.
class ImpairmentModel {
 public:
  /// seed replaces config.seed when config has none.
  ImpairmentModel(const ImpairmentConfig& config, std::uint64_t seed);

  struct Decision {
    bool lost = false;
    bool duplicate = false;
    /// The bit to flip (an index into the frame's bits, taken modulo its
    /// length); none when not corrupted.
    std::optional<std::uint64_t> corrupt_bit;
    bool reordered = false;
    /// Delay plus jitter, before the no-reordering rule.
    std::uint64_t delay_ns = 0;
  };
  /// The random decisions for the next frame. Every frame takes the same
  /// number of draws whatever happens to it, so frame n's decisions depend
  /// only on the seed and n. A duplicate calls it again with
  /// for_duplicate: its own corruption, reordering and delay, no loss and no
  /// further copy.
  Decision decide(bool for_duplicate = false);

  /// When a frame of wire_bytes that arrives at now_ns (any monotonic
  /// clock) leaves the token bucket: now_ns without a rate. Frames leave in
  /// the order they were offered.
  std::int64_t depart(std::uint64_t wire_bytes, std::int64_t now_ns);

  const ImpairmentConfig& config() const { return config_; }
  /// The bucket depth in use (config's, or the default for its rate).
  std::uint64_t burst_bytes() const { return burst_; }

 private:
  std::uint64_t next();
  double uniform();  // [0, 1)
  bool chance(double percent);
  double jitter_sample();
  bool lose();

  ImpairmentConfig config_;
  std::uint64_t state_[4];
  bool bad_state_ = false;
  std::uint32_t reorder_count_ = 0;
  std::uint64_t burst_;
  double tokens_;
  std::int64_t bucket_time_ = 0;
  std::int64_t last_departure_ = INT64_MIN;
};

}  // namespace epair
