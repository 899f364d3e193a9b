// The virtio-net header a TAP opened with IFF_VNET_HDR puts before each
// frame, and its mapping to the engine's frame metadata. Headers come from
// the kernel or, through the kernel, from whoever writes into the TAP, so
// meta_from_header() is fuzzed (fuzz/frame_input.cpp).
#pragma once

#include <cstdint>

#include "epair/frame.hpp"

namespace epair::tap {

/// struct virtio_net_hdr of <linux/virtio_net.h>, which C++ cannot include
/// (it has a member named `class`). Native byte order: TAP's default.
struct virtio_net_hdr {
  std::uint8_t flags;
  std::uint8_t gso_type;
  std::uint16_t hdr_len;
  std::uint16_t gso_size;
  std::uint16_t csum_start;
  std::uint16_t csum_offset;
};
static_assert(sizeof(virtio_net_hdr) == 10);

/// Checksum and segmentation offload of a frame read from the TAP.
void meta_from_header(const virtio_net_hdr& hdr, FrameMeta& meta);
/// The header for a frame written into the TAP.
virtio_net_hdr header_from_meta(const FrameMeta& meta);
/// A TAP has no hardware tagging: a VLAN tag in metadata goes into the
/// frame. False when the frame has no headroom for it.
bool insert_vlan_tag(Frame& frame);

}  // namespace epair::tap
