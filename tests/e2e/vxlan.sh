#!/bin/bash
# An end on a VXLAN tunnel, against Linux's own vxlan: a namespace behind
# end a reaches an address behind a kernel vxlan device in "hostB", over an
# IPv4 and over an IPv6 underlay (a veth between the tunnel end's namespace
# and hostB). Garbage at the tunnel port is counted and ignored; a frame too
# big for the underlay is dropped and counted, or fragmented with df unset;
# hostB's veth leaves inner checksums to offload, which epaird fills in;
# counters also as metrics; detach gives the TAP back.
source "$(dirname "$0")/lib.sh"
start_daemon --metrics "unix:$WORK/metrics.sock"
new_ns NS_A a
new_ns NS_A6 a6
new_ns NS_T tun
new_ns NS_H hostb

vx_field() { show_field "$1" "vxlan.$2"; }

log "underlay: a veth between the tunnel namespace and hostB"
ip link add "vt$RUN_ID" netns "$NS_T" type veth peer name "vh$RUN_ID" netns "$NS_H" || fail "veth"
ip -n "$NS_T" addr add 10.98.0.1/24 dev "vt$RUN_ID"
ip -n "$NS_T" addr add fd98::1/64 dev "vt$RUN_ID" nodad
ip -n "$NS_H" addr add 10.98.0.2/24 dev "vh$RUN_ID"
ip -n "$NS_H" addr add fd98::2/64 dev "vh$RUN_ID" nodad
ip -n "$NS_T" link set "vt$RUN_ID" up
ip -n "$NS_H" link set "vh$RUN_ID" up

log "hostB: Linux's vxlan, VNI 42 over IPv4 and VNI 43 over IPv6, port 4789"
ip -n "$NS_H" link add vx4 type vxlan id 42 local 10.98.0.2 remote 10.98.0.1 dstport 4789 || fail "vx4"
ip -n "$NS_H" link add vx6 type vxlan id 43 local fd98::2 remote fd98::1 dstport 4789 || fail "vx6"
ip -n "$NS_H" addr add 10.99.4.2/24 dev vx4
ip -n "$NS_H" addr add 10.99.6.2/24 dev vx6
ip -n "$NS_H" link set vx4 up
ip -n "$NS_H" link set vx6 up

log "two pairs, end b of each on a tunnel"
A=$(ctl epair create) && B=${A%a}b || fail "create"
A6=$(ctl epair create) && B6=${A6%a}b || fail "create"
ctl "$A" vnet "$NS_A" inet 10.99.4.1/24 mtu 1450 up || fail "configure $A"
ctl "$A6" vnet "$NS_A6" inet 10.99.6.1/24 mtu 1430 up || fail "configure $A6"
ctl "$B" vnet "$NS_T" up attach vxlan remote 10.98.0.2 local 10.98.0.1 vni 42 || fail "attach $B"
ctl "$B6" vnet "$NS_T" up attach vxlan remote fd98::2 vni 43 || fail "attach $B6"
out=$(ctl "$B")
[[ $out == *"vxlan: remote 10.98.0.2 local 10.98.0.1 vni 42 dstport 4789 srcport 49152 65535"* ]] \
  && ok "shown: vxlan line" || fail "not shown: $out"

expect_error "vxlan: needs 'remote ADDR'" ctl "$B" attach vxlan vni 5
expect_error "vxlan: vni must be a whole number from 0 to 16777215: '16777216'" \
  ctl "$B" attach vxlan remote 10.98.0.2 vni 16777216
expect_error "vxlan: invalid remote address 'nowhere'" ctl "$B" attach vxlan remote nowhere
expect_error "'attach' needs a kind" ctl "$B" attach gre remote 10.98.0.2
expect_error "detach it before moving it" ctl "$B" -vnet "$NS_T"

log "IPv4 underlay: ping and iperf3 to an address behind Linux's vx4"
ip netns exec "$NS_A" ping -c 3 -i 0.2 -W 2 10.99.4.2 >/dev/null && ok "ping over IPv4 VXLAN" || fail "ping vx4"
ip netns exec "$NS_H" iperf3 -s -1 -D -B 10.99.4.2 --logfile "$WORK/iperf4.log"
wait_for 5 ip netns exec "$NS_H" bash -c "ss -ltn | grep -q '10.99.4.2:5201'"
ip netns exec "$NS_A" iperf3 -c 10.99.4.2 -t 2 -J >"$WORK/iperf4.json"
mbps=$(python3 -c "import json; print(round(json.load(open('$WORK/iperf4.json'))['end']['sum_received']['bits_per_second']/1e6))" 2>/dev/null)
((${mbps:-0} > 0)) && ok "iperf3 TCP over IPv4 VXLAN: $mbps Mbit/s" || fail "iperf3 over vx4: $(head -c 300 "$WORK/iperf4.json")"
# hostB's veth hands over the ACKs with their TCP checksum still to fill.
(($(vx_field "$B" counters.checksums_filled) > 0)) \
  && ok "inner checksums left to offload filled: $(vx_field "$B" counters.checksums_filled)" \
  || fail "no inner checksum filled"
(($(vx_field "$B" counters.sent) > 100 && $(vx_field "$B" counters.received) > 100)) \
  && ok "tunnel counters: $(vx_field "$B" counters.sent) sent, $(vx_field "$B" counters.received) received" \
  || fail "tunnel counters"
(($(counter "$A" opackets) > 100 && $(counter "$B" ipackets) > 100)) && ok "end counters count" \
  || fail "end counters"

log "capture and source ports on a tunnel end"
ctl capture "$B" -c 3 icmp >"$WORK/capture.txt" 2>&1 &
capture=$!
sleep 0.5
ip netns exec "$NS_H" timeout 5 tcpdump -n -c 6 -i "vh$RUN_ID" udp port 4789 >"$WORK/outer.txt" 2>/dev/null &
outer=$!
sleep 0.5
ip netns exec "$NS_A" ping -c 3 -i 0.2 -W 2 10.99.4.2 >/dev/null
wait "$capture"
wait "$outer"
(($(grep -c ICMP "$WORK/capture.txt") == 3)) && ok "capture on $B saw the pings" || fail "capture: $(cat "$WORK/capture.txt")"
# Every datagram towards hostB comes from a port in 49152-65535, chosen by flow.
ports=$(awk '$3 ~ /^10\.98\.0\.1\./ {n = split($3, p, "."); print p[n]}' "$WORK/outer.txt" | sort -u)
bad=$(for p in $ports; do ((p < 49152 || p > 65535)) && echo "$p"; done)
[[ -n $ports && -z $bad ]] && ok "source ports $(echo $ports) within 49152-65535" || fail "source ports: $ports"

log "IPv6 underlay"
ip netns exec "$NS_A6" ping -c 3 -i 0.2 -W 2 10.99.6.2 >/dev/null && ok "ping over IPv6 VXLAN" || fail "ping vx6"
ip netns exec "$NS_H" iperf3 -s -1 -D -B 10.99.6.2 --logfile "$WORK/iperf6.log"
wait_for 5 ip netns exec "$NS_H" bash -c "ss -ltn | grep -q '10.99.6.2:5201'"
ip netns exec "$NS_A6" iperf3 -c 10.99.6.2 -t 2 >/dev/null && ok "iperf3 TCP over IPv6 VXLAN" || fail "iperf3 vx6"

log "too big for the underlay: dropped and counted, not fragmented"
ctl "$A" mtu 1500 || fail "mtu 1500"
before=$(vx_field "$B" counters.too_big)
ip netns exec "$NS_A" ping -c 2 -i 0.2 -W 1 -M do -s 1460 10.99.4.2 >/dev/null && fail "1460-byte ping crossed"
after=$(vx_field "$B" counters.too_big)
((after >= before + 2)) && ok "too_big $before -> $after" || fail "too_big $before -> $after"

log "df unset: sent in IP fragments that Linux reassembles; ttl and dev"
expect_error "vxlan: no device nosuch$RUN_ID" \
  ctl "$B" attach vxlan remote 10.98.0.2 local 10.98.0.1 vni 42 dev "nosuch$RUN_ID"
[[ $(vx_field "$B" text) == "remote 10.98.0.2 local 10.98.0.1 vni 42 dstport 4789 srcport 49152 65535" ]] \
  && ok "a refused attach keeps the tunnel" || fail "tunnel after a refused attach: $(vx_field "$B" text)"
ip netns exec "$NS_A" ping -c 1 -W 2 10.99.4.2 >/dev/null && ok "and it carries" || fail "ping after a refused attach"
ctl "$B" attach vxlan remote 10.98.0.2 local 10.98.0.1 vni 42 ttl 9 dev "vt$RUN_ID" df unset || fail "attach df unset"
[[ $(vx_field "$B" df) == unset && $(vx_field "$B" ttl) == 9 ]] && ok "shown: df unset, ttl 9" || fail "not shown"
ip netns exec "$NS_H" timeout 5 tcpdump -v -n -c 2 -i "vh$RUN_ID" "src 10.98.0.1 and ip[6:2] & 0x3fff != 0" \
  >"$WORK/fragments.txt" 2>/dev/null &
outer=$!
sleep 0.5
before=$(vx_field "$B" counters.too_big)
ip netns exec "$NS_A" ping -c 2 -i 0.2 -W 2 -M do -s 1460 10.99.4.2 >/dev/null \
  && ok "a 1460-byte ping crosses in fragments" || fail "1460-byte ping with df unset"
wait "$outer"
[[ $(vx_field "$B" counters.too_big) == "$before" ]] && ok "nothing counted too big" || fail "too_big grew"
grep -q "ttl 9," "$WORK/fragments.txt" && grep -q "flags \[+\]" "$WORK/fragments.txt" \
  && ok "fragments on the underlay, ttl 9" || fail "underlay: $(cat "$WORK/fragments.txt")"
# Bound to lo, the datagrams leave through lo and never reach hostB.
ctl "$B" attach vxlan remote 10.98.0.2 local 10.98.0.1 vni 42 dev lo || fail "attach dev lo"
ip netns exec "$NS_A" ping -c 2 -i 0.2 -W 1 10.99.4.2 >/dev/null && fail "crossed through dev lo"
(($(vx_field "$B" counters.sent) > 0)) && ok "dev lo: sent there, and nothing reaches hostB" \
  || fail "nothing sent through lo"
ctl "$A" mtu 1450
ctl "$B" attach vxlan remote 10.98.0.2 local 10.98.0.1 vni 42 || fail "attach again"

log "garbage at the tunnel port is counted and ignored"
ip netns exec "$NS_H" python3 - <<'PY'
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
frame = bytes.fromhex("02000000000102000000000208004500")
for payload in [b"", b"\x08", b"\x08\0\0\0\0\0\x2a\0" + b"\x02" * 6,             # short
                b"\x00\0\0\0\0\0\x2a\0" + frame + bytes(40),                      # no I flag
                b"\x08\0\0\0\0\0\x07\0" + frame + bytes(40),                      # VNI 7
                b"\x08\0\0\0\0\0\x2a\0" + bytes(6) + b"\x01" * 6 + bytes(40)]:    # group source address
    s.sendto(payload, ("10.98.0.1", 4789))
PY
wait_for 5 bash -c "[[ \$('$EPAIRCTL' --json $B | python3 -c \"import json,sys; c=json.load(sys.stdin)['interfaces'][0]['vxlan']['counters']; print(c['short'], c['bad_flags'], c['other_vni'], c['bad_frame'])\") == '3 1 1 1' ]]" \
  && ok "counted: 3 short, 1 without the I flag, 1 other VNI, 1 bad frame" \
  || fail "garbage counters: $(vx_field "$B" counters)"
ip netns exec "$NS_A" ping -c 2 -i 0.2 -W 2 10.99.4.2 >/dev/null && ok "tunnel still carries" || fail "ping after garbage"
BODY=$(scrape "unix:$WORK/metrics.sock" | tail -n +3)
[[ $(value epair_vxlan_dropped_packets_total "interface=$B,cause=short") == 3 &&
  $(value epair_vxlan_dropped_packets_total "interface=$B,cause=other_vni") == 1 ]] \
  && ok "metrics: drops by cause" || fail "metrics: $(grep vxlan_dropped <<<"$BODY")"
(($(value epair_vxlan_packets_total "interface=$B,direction=sent") > 0 &&
  $(value epair_vxlan_packets_total "interface=$B,direction=received") > 0)) \
  && ok "metrics: packets by direction" || fail "metrics: $(grep vxlan_packets <<<"$BODY")"
value epair_vxlan_checksums_filled_total "interface=$B" >/dev/null && ok "metrics: checksums filled" \
  || fail "no epair_vxlan_checksums_filled_total"
value epair_vxlan_packets_total "interface=$A" >/dev/null && fail "$A is no tunnel, yet a sample" \
  || ok "metrics: none for a plain end"

log "restart: the tunnel comes back"
stop_daemon TERM
start_daemon --metrics "unix:$WORK/metrics.sock"
[[ $(vx_field "$B" text) == "remote 10.98.0.2 local 10.98.0.1 vni 42 dstport 4789 srcport 49152 65535" ]] \
  && ok "attached again" || fail "not attached after restart"
wait_for 10 ip netns exec "$NS_A" ping -c 1 -W 1 10.99.4.2 && ok "ping after restart" || fail "ping after restart"

log "detach: a plain end again"
ctl "$B" detach || fail "detach"
[[ $(vx_field "$B" text) == None ]] && ok "detached" || fail "still attached"
ip -n "$NS_T" addr add 10.99.4.3/24 dev "$B"
wait_for 10 ip netns exec "$NS_A" ping -c 1 -W 1 10.99.4.3 && ok "end b's TAP carries again" || fail "TAP after detach"
expect_error "detach: not attached" ctl "$B" detach

finish
