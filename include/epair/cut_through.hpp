// The one seam through which an endpoint may move frames past the cable:
// an endpoint that hands its frames straight to the other end's endpoint,
// without frames from the pool (memif zero-copy, where a frame crosses as a
// descriptor on the other end's ring). Everything else transmits.
//
// Guarantees:
// - open() is true only when transmit() would deliver every frame of a
//   valid size at once, untouched: both ends up and running, no tap on
//   either, no impairment on this one, and nothing waiting in the peer's
//   receive queues that a frame handed over now would overtake.
// - What crosses is counted exactly as transmit() and the peer's delivery
//   would count it, so the ends' counters cannot tell the two ways apart.
// - Any thread may call these, as it may call transmit().
#pragma once

#include <cstdint>
#include <memory>

namespace epair {

class Endpoint;
class Interface;

class CutThrough {
 public:
  /// The seam of ifp, which must outlive it.
  explicit CutThrough(Interface& ifp) : ifp_(ifp) {}

  bool open() const;
  /// The other end's endpoint, which frames are handed to; null when none
  /// is attached or the pair is gone.
  std::shared_ptr<Endpoint> peer_endpoint() const;
  /// Counts frames handed over: opackets and obytes here, ipackets and
  /// ibytes on the peer.
  void count_crossed(std::uint64_t frames, std::uint64_t bytes);
  /// On the end frames reached, once their destination addresses are read:
  /// those with a group address, in imcasts here and omcasts on the peer.
  void count_group_addressed(std::uint64_t frames);

 private:
  Interface& ifp_;
};

}  // namespace epair
