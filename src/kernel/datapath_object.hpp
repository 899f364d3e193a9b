// The kernel data path's eBPF object (datapath.bpf.c compiled for the bpf
// target), built into epaird.
#pragma once

#include <span>

namespace epair::kernel {

std::span<const unsigned char> datapath_object();

}  // namespace epair::kernel
