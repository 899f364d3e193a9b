/* The ceiling issue 21 set for the kernel data path: two veth pairs whose
 * far ends share a namespace of their own, crossed by nothing but this
 * program on those far ends' ingress. It is epair's kernel path without
 * epair: no lookup, no counters, no checks. netns-vs-veth --ceiling
 * compiles it with the two far ends' ifindexes (END_A, END_B) and measures
 * it beside epair and veth, so that what the structure costs and what
 * epair's program adds to it are told apart. */
// clang-format off
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
// clang-format on

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("tc")
int cross(struct __sk_buff* skb) { return bpf_redirect_peer(skb->ifindex == END_A ? END_B : END_A, 0); }
