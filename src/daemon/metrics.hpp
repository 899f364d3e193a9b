// The Prometheus text exposition (version 0.0.4) of epaird: the engine's
// frame pool and workers, the kernel data path's maps, then every end's
// state and counters, its impairment's and its attachment's.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "end.hpp"
#include "epair/engine.hpp"

namespace epair::daemon {

/// What the metrics say of captures: per interface name, the captures
/// running on it and the frames captures on it lost (running and ended).
struct CaptureMetrics {
  std::map<std::string, std::uint64_t, std::less<>> running;
  std::map<std::string, std::uint64_t, std::less<>> dropped;
};

/// datapath: the kernel data path, when it is open.
std::string render_metrics(Engine& engine, const std::map<std::string, End, std::less<>>& ends,
                           const CaptureMetrics& captures, const kernel::Datapath* datapath);

}  // namespace epair::daemon
