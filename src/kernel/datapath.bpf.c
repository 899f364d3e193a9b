/* The kernel data path: SPEC.md's transmit steps for what an end sends,
 * run by tc on the end's hidden veth peer, then the frame goes into the
 * peer end (bpf_redirect_peer) or, when the cable needs user space, to
 * epaird's engine through the end's hidden TAP. A second program takes what
 * the engine writes into an end's TAP to that end.
 *
 * One decision per frame: the end's `way` is read once, so a frame switched
 * between the two ways goes one of them, never both and never neither.
 * GSO and checksum metadata pass through untouched.
 *
 * The end receives a frame as from a veth: a frame for another host's
 * address is that host's (PACKET_OTHERHOST) and its stack drops it, a
 * broadcast or multicast one is marked so. */
// libbpf's headers use the kernel's types, declared first.
// clang-format off
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
// clang-format on

#include "datapath_abi.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, EPAIR_KERNEL_VETH_INDEX(EPAIR_KERNEL_MAX_ENDS));
  __type(key, __u32);
  __type(value, struct epair_end_config);
} ends SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, EPAIR_KERNEL_MAX_ENDS);
  __type(key, __u32);
  __type(value, struct epair_tap_config);
} from_engine SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, EPAIR_KERNEL_MAX_ENDS);
  __type(key, __u32);
  __type(value, struct epair_end_counters);
} counters SEC(".maps");

/* Not read here: epaird maps it, and binds it to the transmit program so
 * that it lives as long as the program does. */
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(map_flags, BPF_F_MMAPABLE);
  __uint(max_entries, EPAIR_KERNEL_MAX_ENDS);
  __type(key, __u32);
  __type(value, struct epair_engine_counters);
} engine_counters SEC(".maps");

/* Linux keeps a frame's outer VLAN tag beside it (skb->vlan_present), not in
 * it: the frame on a wire is 4 bytes longer. */
static __always_inline __u32 tag_length(struct __sk_buff* skb) { return skb->vlan_present ? 4 : 0; }

/* The length of the frames a GSO packet becomes: its headers (Ethernet,
 * VLAN tags, IPv4 or IPv6, TCP or UDP) and gso_size bytes. */
static __always_inline __u32 segment_length(struct __sk_buff* skb) {
  __u32 at = ETH_HLEN;
  __be16 proto = skb->protocol;
  __u8 l4 = 0;
  if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) {
    if (bpf_skb_load_bytes(skb, at + 2, &proto, sizeof proto) < 0) return skb->len;
    at += 4;
  }
  if (proto == bpf_htons(ETH_P_IP)) {
    struct iphdr ip;
    if (bpf_skb_load_bytes(skb, at, &ip, sizeof ip) < 0) return skb->len;
    at += ip.ihl * 4;
    l4 = ip.protocol;
  } else if (proto == bpf_htons(ETH_P_IPV6)) {
    struct ipv6hdr ip6;
    if (bpf_skb_load_bytes(skb, at, &ip6, sizeof ip6) < 0) return skb->len;
    at += sizeof ip6;
    l4 = ip6.nexthdr;
  }
  if (l4 == IPPROTO_TCP) {
    struct tcphdr tcp;
    if (bpf_skb_load_bytes(skb, at, &tcp, sizeof tcp) < 0) return skb->len;
    at += tcp.doff * 4;
  } else if (l4 == IPPROTO_UDP) {
    at += sizeof(struct udphdr);
  }
  return at + tag_length(skb) + skb->gso_size;
}

/* The frame's destination address; nonzero when it has none. */
static __always_inline long read_destination(struct __sk_buff* skb, __u8 dst[ETH_ALEN]) {
  void* data = (void*)(long)skb->data;
  void* data_end = (void*)(long)skb->data_end;
  if (data + ETH_ALEN <= data_end) {
    __builtin_memcpy(dst, data, ETH_ALEN);
    return 0;
  }
  return bpf_skb_load_bytes(skb, 0, dst, ETH_ALEN);
}

/* Into the end whose veth peer is veth and whose address is mac.
 * bpf_redirect_peer() is the short way, but the kernel marks what it
 * carries as the end's own (PACKET_HOST) whatever its destination: a frame
 * for any other address goes out of veth instead, and the end classifies
 * it by its destination as veth's receive does. */
static __always_inline long enter_end(__u32 veth, const __u8 dst[ETH_ALEN], const __u8 mac[ETH_ALEN]) {
  __u8 differ = 0;
#pragma unroll
  for (int i = 0; i < ETH_ALEN; ++i) differ |= dst[i] ^ mac[i];
  return differ == 0 ? bpf_redirect_peer(veth, 0) : bpf_redirect(veth, 0);
}

SEC("tc")
int transmit(struct __sk_buff* skb) {
  __u32 self = skb->ifindex;
  struct epair_end_config* end = bpf_map_lookup_elem(&ends, &self);
  if (!end || end->peer_veth == 0) return TC_ACT_SHOT;
  /* The one decision: everything below reads this copy. */
  __u8 way = *(volatile __u8*)&end->way;
  if (way == EPAIR_WAY_ENGINE) return bpf_redirect(end->tap, 0);

  __u32 slot = end->slot;
  struct epair_end_counters* out = bpf_map_lookup_elem(&counters, &slot);
  __u32 peer_slot = end->peer_slot;
  struct epair_end_counters* in = bpf_map_lookup_elem(&counters, &peer_slot);
  if (!out || !in) return TC_ACT_SHOT;
  __u32 segments = skb->gso_segs > 1 ? skb->gso_segs : 1;
  __u32 bytes = skb->len + tag_length(skb);
  __u32 length = bytes;
  if (skb->gso_size != 0) {
    /* Counted as the frames it becomes: each has the headers. */
    length = segment_length(skb);
    bytes += (segments - 1) * (length - skb->gso_size);
  }
  __u8 dst[ETH_ALEN];
  /* 1. Longer than MTU + 18, or no Ethernet header; 4. the peer not UP
   * and RUNNING. */
  if (length > end->max_frame || !end->peer_up || read_destination(skb, dst) != 0) {
    out->oerrors += 1;
    return TC_ACT_SHOT;
  }
  /* Linux takes no frame longer than the receiving end's MTU + 18 in. */
  if (length > end->peer_max_frame) {
    in->ierrors += 1;
    return TC_ACT_SHOT;
  }
  __u32 mcasts = (dst[0] & 1) ? segments : 0;
  /* 7. Both ends' counters. */
  out->opackets += segments;
  out->obytes += bytes;
  out->omcasts += mcasts;
  in->ipackets += segments;
  in->ibytes += bytes;
  in->imcasts += mcasts;
  /* 5. Scrub: what belongs to the sender only. Crossing into the peer's
   * namespace, the kernel clears the rest. */
  skb->mark = 0;
  skb->priority = 0;
  skb->tc_index = 0;
  return enter_end(end->peer_veth, dst, end->peer_mac);
}

SEC("tc")
int deliver(struct __sk_buff* skb) {
  __u32 self = skb->ifindex;
  struct epair_tap_config* tap = bpf_map_lookup_elem(&from_engine, &self);
  __u8 dst[ETH_ALEN];
  if (!tap || read_destination(skb, dst) != 0) return TC_ACT_SHOT;
  return enter_end(tap->veth, dst, tap->mac);
}
