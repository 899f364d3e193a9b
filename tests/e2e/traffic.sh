#!/bin/bash
# Ping both ways over IPv4 and IPv6, TCP through iperf3, jumbo frames, an
# oversize frame dropped and counted, and destroy while iperf3 runs.
source "$(dirname "$0")/lib.sh"
start_daemon
connect_pair

# EPAIR_KERNEL_HOOK=tc: the kernel path's programs in filters of tc's
# clsact, as on kernels before 6.6 (epaird(8), ENVIRONMENT).
# The next epaird finds them there; the rest of the scenario runs on them.
if [[ ${EPAIR_KERNEL_HOOK:-} == tc ]]; then
  grep -q "attached by tc$" "$WORK/epaird.log" && ok "programs in tc filters, as asked" \
    || fail "EPAIR_KERNEL_HOOK=tc: $(grep -o 'attached by.*' "$WORK/epaird.log")"
  stop_daemon TERM
  start_daemon
  grep -q "adopted the programs (tc) and counters" "$WORK/epaird.log" && ok "adopted from the tc filters" \
    || fail "not adopted: $(grep -i 'kernel data path' "$WORK/epaird.log")"
fi

log "ping both ways"
ip netns exec "$NS_A" ping -c 3 -i 0.2 -W 2 10.99.0.2 >/dev/null && ok "IPv4 a->b" || fail "IPv4 a->b"
ip netns exec "$NS_B" ping -c 3 -i 0.2 -W 2 10.99.0.1 >/dev/null && ok "IPv4 b->a" || fail "IPv4 b->a"
wait_dad "$NS_A" && wait_dad "$NS_B" || fail "IPv6 DAD did not finish"
ip netns exec "$NS_A" ping -6 -c 3 -i 0.2 -W 2 fd99::2 >/dev/null && ok "IPv6 a->b" || fail "IPv6 a->b"
ip netns exec "$NS_B" ping -6 -c 3 -i 0.2 -W 2 fd99::1 >/dev/null && ok "IPv6 b->a" || fail "IPv6 b->a"
(($(counter "$A" opackets) >= 6 && $(counter "$B" ipackets) >= 6)) && ok "counters count" || fail "counters"

log "ifconfig face shows the namespace's addresses"
out=$(ctl "$A")
[[ $out == *"inet 10.99.0.1 netmask 0xffffff00 broadcast 10.99.0.255"* ]] && ok "inet line" || fail "inet line: $out"
[[ $out == *"inet6 fd99::1 prefixlen 64"* ]] && ok "inet6 line" || fail "inet6 line: $out"
[[ $out == *"vnet: $NS_A"* && $out == *"status: active"* ]] && ok "vnet and status" || fail "vnet/status: $out"

log "iperf3 TCP"
ip netns exec "$NS_B" iperf3 -s -1 -D -B 10.99.0.2 --logfile "$WORK/iperf-s.log"
wait_for 5 ip netns exec "$NS_B" bash -c "ss -ltn | grep -q ':5201'"
if ip netns exec "$NS_A" iperf3 -c 10.99.0.2 -t 2 -J >"$WORK/iperf.json"; then
  gbps=$(python3 -c "import json; print(round(json.load(open('$WORK/iperf.json'))['end']['sum_received']['bits_per_second']/1e9, 2))")
  ok "iperf3 TCP $gbps Gbit/s"
else
  fail "iperf3 TCP"
fi

# TSO segments cross whole, as large frames at the far end. A port of
# its own: the first server may still be on its way out.
long=$(frames_longer_than 4000 "$NS_A" "$NS_B" "$B" 10.99.0.2 5202) || fail "iperf3 TCP for the capture"
((long > 0)) && ok "TCP segments crossed whole: $long frames over 4000 bytes captured on $B" \
  || fail "no frame over 4000 bytes on $B: offload lost"

log "jumbo frames: MTU 9000 with don't-fragment"
ctl "$A" mtu 9000 && ctl "$B" mtu 9000 || fail "mtu 9000"
[[ $(ip -n "$NS_A" -o link show "$A") == *"mtu 9000"* ]] && ok "kernel sees mtu 9000" || fail "kernel mtu"
ip netns exec "$NS_A" ping -c 2 -M do -s 8972 -W 2 10.99.0.2 >/dev/null && ok "8972-byte ping, DF" || fail "jumbo ping"

log "oversize frame: larger than the receiving end's MTU"
ctl "$B" mtu 1500
before=$(counter "$B" ierrors)
ip netns exec "$NS_A" ping -c 1 -M do -s 4000 -W 1 10.99.0.2 >/dev/null && fail "oversize frame got through"
after=$(counter "$B" ierrors)
((after > before)) && ok "dropped and counted in $B ierrors ($before -> $after)" || fail "ierrors $before -> $after"
ctl "$A" mtu 1500

log "destroy while iperf3 runs"
ip netns exec "$NS_B" iperf3 -s -1 -D -B 10.99.0.2 --logfile "$WORK/iperf-s2.log" --pidfile "$WORK/iperf-s2.pid"
wait_for 5 ip netns exec "$NS_B" bash -c "ss -ltn | grep -q ':5201'"
ip netns exec "$NS_A" iperf3 -c 10.99.0.2 -t 20 -P 2 >"$WORK/iperf2.log" 2>&1 &
client=$!
sleep 1.5
started=$SECONDS
ctl "$B" destroy && ok "destroyed under load" || fail "destroy under load"
((SECONDS - started <= 5)) && ok "destroy took $((SECONDS - started)) s" || fail "destroy took $((SECONDS - started)) s"
# Like a pulled cable: TCP keeps retrying until the client is stopped.
kill "$client" 2>/dev/null
wait "$client" 2>/dev/null
ctl -C >/dev/null && ok "epaird still answers" || fail "epaird died"
ip -n "$NS_A" link show "$A" >/dev/null 2>&1 && fail "$A still exists" || ok "$A is gone"
ip -n "$NS_B" link show "$B" >/dev/null 2>&1 && fail "$B still exists" || ok "$B is gone"
[[ -z $(ctl -l) ]] && ok "no interfaces left" || fail "left: $(ctl -l)"
# This scenario's server, not another's: pkill would see every namespace's.
kill "$(cat "$WORK/iperf-s2.pid")" 2>/dev/null
finish
