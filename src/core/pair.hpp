// The two interfaces of one epair and what they share.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "dispatcher.hpp"
#include "epair/interface.hpp"

namespace epair {

class ImpairmentClock;

struct Pair : std::enable_shared_from_this<Pair> {
  Pair(std::shared_ptr<Dispatcher> dispatcher, int unit, std::string_view prefix, std::size_t queues,
       std::uint32_t queue_depth, bool carrier_follows_peer, const PairCounters& counters);
  ~Pair();

  std::shared_ptr<Interface> handle(Interface& ifp) { return {shared_from_this(), &ifp}; }

  // Declared first: the interfaces' queues are handed to it.
  std::shared_ptr<Dispatcher> dispatcher;
  // The engine's, for impaired ends; set before the pair is published.
  std::shared_ptr<ImpairmentClock> clock;
  const int unit;
  const bool carrier_follows_peer;
  std::unique_ptr<Interface> a;
  std::unique_ptr<Interface> b;
  // Set by step 1 of Engine's teardown; peer() answers null afterwards.
  std::atomic<bool> destroyed{false};
};

}  // namespace epair
