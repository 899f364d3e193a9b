// The VXLAN endpoint: the stack behind an end is a remote VXLAN tunnel end
// (Linux's vxlan, Open vSwitch, any RFC 7348 peer). What the end receives
// leaves as VXLAN/UDP to the remote; what arrives for the VNI is transmitted
// on the end, towards its peer.
//
// Sending goes through a raw UDP socket, so that each frame's source port
// can be the hash of its flow (RFC 7348's advice, for ECMP); the kernel adds
// the IP header, and fragments nothing (path MTU discovery "do"): a frame
// that does not fit is dropped and counted. Receiving is a UDP socket bound
// to the destination port. Both are made in the namespace the end is in.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>

#include "counter_table.hpp"
#include "epair/interface.hpp"
#include "unique_fd.hpp"
#include "vxlan_config.hpp"

namespace epair::vxlan {

struct Counters {
  std::uint64_t sent = 0;         ///< frames sent to the remote
  std::uint64_t received = 0;     ///< frames that arrived for the VNI
  std::uint64_t too_big = 0;      ///< did not fit the underlay's MTU
  std::uint64_t send_errors = 0;  ///< refused by the socket otherwise
  std::uint64_t short_ = 0;       ///< datagrams shorter than headers
  std::uint64_t bad_flags = 0;    ///< the I flag not set
  std::uint64_t other_vni = 0;    ///< for another VNI
  std::uint64_t bad_frame = 0;    ///< the inner frame malformed
  std::uint64_t no_buffer = 0;    ///< the frame pool was empty
  /// received frames whose inner checksum was left to offload, filled in
  std::uint64_t checksums_filled = 0;
};

// How each counter is shown: key, words, clause, heading, metric, label.
inline constexpr CounterField<Counters> kCounterFields[] = {
    {&Counters::sent, {"sent", "sent", 0, "", "epair_vxlan_packets_total", "direction=\"sent\""}},
    {&Counters::received, {"received", "received", 0, "", "epair_vxlan_packets_total", "direction=\"received\""}},
    {&Counters::too_big,
     {"too_big", "too big", 1, "dropped: ", "epair_vxlan_dropped_packets_total", "cause=\"too_big\""}},
    {&Counters::send_errors,
     {"send_errors", "send errors", 1, "", "epair_vxlan_dropped_packets_total", "cause=\"send_error\""}},
    {&Counters::short_, {"short", "short", 1, "", "epair_vxlan_dropped_packets_total", "cause=\"short\""}},
    {&Counters::bad_flags,
     {"bad_flags", "bad flags", 1, "", "epair_vxlan_dropped_packets_total", "cause=\"bad_flags\""}},
    {&Counters::other_vni,
     {"other_vni", "other VNI", 1, "", "epair_vxlan_dropped_packets_total", "cause=\"other_vni\""}},
    {&Counters::bad_frame,
     {"bad_frame", "bad frames", 1, "", "epair_vxlan_dropped_packets_total", "cause=\"bad_frame\""}},
    {&Counters::no_buffer,
     {"no_buffer", "no buffer", 1, "", "epair_vxlan_dropped_packets_total", "cause=\"no_buffer\""}},
    {&Counters::checksums_filled,
     {"checksums_filled", "checksums filled", 2, "", "epair_vxlan_checksums_filled_total", ""}},
};

inline constexpr MetricFamily kMetricFamilies[] = {
    {"epair_vxlan_packets_total", "counter",
     "Frames a VXLAN end sent to its remote and received from it, by direction. VXLAN ends only."},
    {"epair_vxlan_checksums_filled_total", "counter",
     "Frames a VXLAN end received with an inner checksum its sender left to offload, filled in by epaird. VXLAN "
     "ends only."},
    {"epair_vxlan_dropped_packets_total", "counter",
     "What a VXLAN end dropped, by cause: too_big (for the underlay's MTU), send_error, short, bad_flags (no I "
     "flag), other_vni, bad_frame, no_buffer (frame pool empty)."},
};

class Endpoint final : public epair::Endpoint {
 public:
  /// Opens the sockets in the calling thread's namespace: EADDRINUSE when
  /// the port is taken, ENODEV for an unknown dev.
  static Result<std::shared_ptr<Endpoint>> open(std::shared_ptr<Interface> ifp, const Config& config, FramePool& pool);
  ~Endpoint() override;
  Endpoint(const Endpoint&) = delete;
  Endpoint& operator=(const Endpoint&) = delete;

  /// Starts the receiving thread.
  Status start();
  /// Joins it; idempotent.
  void stop();

  const Config& config() const { return config_; }
  Counters counters() const { return counters_.snapshot(); }
  CounterTable counter_table() const { return tabulate<Counters>(counters(), kCounterFields); }
  void input(Interface& ifp, std::span<Frame* const> burst) noexcept override;

 private:
  Endpoint(std::shared_ptr<Interface> ifp, const Config& config, FramePool& pool);
  void receive_loop();
  std::uint16_t source_port(const Frame& frame) const;

  std::shared_ptr<Interface> ifp_;
  const Config config_;
  FramePool& pool_;
  os::UniqueFd send_;
  os::UniqueFd receive_;
  os::UniqueFd stop_event_;
  std::thread receiver_;

  LiveCounters<Counters, kCounterFields> counters_;
};

}  // namespace epair::vxlan
