#include "epair/cut_through.hpp"

#include "epair/interface.hpp"

namespace epair {

bool CutThrough::open() const { return ifp_.cut_through_open(); }

std::shared_ptr<Endpoint> CutThrough::peer_endpoint() const {
  const std::shared_ptr<Interface> peer = ifp_.peer();
  return peer ? peer->endpoint() : nullptr;
}

void CutThrough::count_crossed(std::uint64_t frames, std::uint64_t bytes) { ifp_.count_cut_through(frames, bytes); }

void CutThrough::count_group_addressed(std::uint64_t frames) { ifp_.count_cut_through_mcasts(frames); }

}  // namespace epair
