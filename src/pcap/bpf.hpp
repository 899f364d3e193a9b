// tcpdump's filter language for captures: compiled by libpcap for Ethernet
// frames and run by libpcap's BPF interpreter where the frame is tapped.
#pragma once

#include <memory>
#include <string_view>

#include "epair/capture.hpp"
#include "epair/status.hpp"

namespace epair::pcap {

/// Compiles expression (e.g. "icmp or tcp port 80") for frames cut to
/// snaplen bytes. EINVAL with libpcap's message when it does not compile;
/// an empty expression keeps every frame (null filter).
Result<std::shared_ptr<const CaptureFilter>> compile_filter(std::string_view expression, std::uint32_t snaplen);

}  // namespace epair::pcap
