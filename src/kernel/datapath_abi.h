/* What the kernel data path's eBPF program and epaird share: the maps'
 * keys and values. C, so that both the program (clang, bpf target) and
 * epaird (C++) compile it.
 *
 * Guarantees:
 * - ends and from_engine are keyed by an ifindex in epaird's hidden
 *   namespace: a hidden veth (the visible end's peer) or a hidden TAP (the
 *   end's way into and out of the engine). counters is an array indexed by
 *   the slot epaird gave the end.
 * - ends is an array: epaird makes an end's hidden veth at
 *   EPAIR_KERNEL_VETH_INDEX(slot) and its TAP at EPAIR_KERNEL_TAP_INDEX(slot),
 *   so that what a frame needs is found without hashing (the hash was some
 *   50 of the 130 ns a frame spent in the program beyond a bare redirect,
 *   BENCHMARKS.md). An entry whose peer_veth is 0 holds no end. The
 *   programs of an epaird before this keep ends in a hash, and any index;
 *   an epaird adopting them does as they did.
 * - Fields added later go at the end of a value: an epaird adopting the
 *   maps of an older one reads and writes only the value's length there.
 * - Counters are per CPU; a reader adds the CPUs' values.
 * - engine_counters holds what the engine counted for each end, at the
 *   end's slot, where epaird maps it: the program never reads it, but holds
 *   it (bound to the transmit program), so that it outlives epaird as the
 *   kernel's counters do. */
#ifndef EPAIR_KERNEL_DATAPATH_ABI_H
#define EPAIR_KERNEL_DATAPATH_ABI_H

#include <linux/types.h>

/* Ends the maps hold at most; each has a slot in the counters. */
#define EPAIR_KERNEL_MAX_ENDS 8192

/* Where the hidden devices of the end at slot are, as ifindexes in the
 * hidden namespace, whose loopback is 1. */
#define EPAIR_KERNEL_FIRST_INDEX 16
#define EPAIR_KERNEL_VETH_INDEX(slot) (EPAIR_KERNEL_FIRST_INDEX + (slot))
#define EPAIR_KERNEL_TAP_INDEX(slot) (EPAIR_KERNEL_FIRST_INDEX + EPAIR_KERNEL_MAX_ENDS + (slot))

enum epair_way {
  EPAIR_WAY_KERNEL = 0, /* redirected into the peer end by the program */
  EPAIR_WAY_ENGINE = 1, /* handed to epaird's engine through the end's TAP */
};

/* ends[hidden veth of X]: what X transmits meets this, in one lookup. */
struct epair_end_config {
  __u32 peer_veth;      /* hidden veth of X's peer Y: bpf_redirect_peer() lands in Y */
  __u32 tap;            /* X's hidden TAP, read by the engine */
  __u32 max_frame;      /* X's MTU + 18 (Ethernet and a VLAN header) */
  __u32 peer_max_frame; /* Y's */
  __u32 slot;           /* X's counters */
  __u32 peer_slot;      /* Y's */
  __u8 way;             /* enum epair_way */
  __u8 peer_up;         /* Y is UP and RUNNING */
  __u8 pad[2];
  __u8 peer_mac[6]; /* Y's Ethernet address: a frame for it takes the short way in */
  __u8 pad2[2];
};

/* from_engine[hidden TAP of Y]: what the engine delivers to Y goes to the
 * hidden veth whose peer Y is. */
struct epair_tap_config {
  __u32 veth;
  __u8 mac[6]; /* Y's Ethernet address, as peer_mac above */
  __u8 pad[2];
};

/* counters[slot of X]: what the kernel path counted for X, in
 * SPEC.md's words; a GSO packet counts its segments. ierrors: frames longer
 * than X's MTU + 18 its peer sent, which Linux would not take in. */
struct epair_end_counters {
  __u64 opackets;
  __u64 obytes;
  __u64 omcasts;
  __u64 oerrors;
  __u64 ipackets;
  __u64 ibytes;
  __u64 imcasts;
  __u64 ierrors;
};

/* engine_counters[slot of X]: the engine's counters of X, as the engine
 * keeps them (epair/counter_block.hpp's CounterBlock: three cache lines). */
struct epair_engine_counters {
  __u64 words[24];
};

#endif
