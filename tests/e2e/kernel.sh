#!/bin/bash
# The kernel data path (epaird --datapath kernel): veth ends whose hidden
# peers stay out of the host's `ip link` and `ip netns list`; the views say
# which way frames go; counters exact after iperf3 TCP and UDP; a frame
# longer than MTU + 18 dropped and counted; carrier follows the peer; an end
# receives as from a veth (another host's frames, broadcast, multicast); frames
# go on flowing while epaird is killed, and the counters, the engine's share
# too, go on from where they were; an impairment or a capture sends frames
# through the engine, and switching ways under traffic at full rate loses
# none uncounted and repeats none; destroy takes every device.
source "$(dirname "$0")/lib.sh"
start_daemon --datapath kernel
connect_pair
HIDDEN="$STATE_DIR/hidden.netns"
hidden() { nsenter --net="$HIDDEN" "$@"; }
hidden_index() { hidden ip -o link show dev "$1" | cut -d: -f1; }
# read_counters KEY...: "A.opackets B.ipackets B.rx_packets" now, into NOW;
# rx_packets is Linux's count on the device.
declare -A NOW LAST
read_counters() {
  local key end value
  for key in "$@"; do
    end=${key%%.*}
    if [[ $key == *.rx_packets ]]; then
      value=$(ip netns exec "$(ns_of "$end")" cat "/sys/class/net/${!end}/statistics/rx_packets")
    else
      value=$(counter "${!end}" "${key#*.}")
    fi
    NOW[$key]=$value
  done
}
ns_of() { [[ $1 == A ]] && echo "$NS_A" || echo "$NS_B"; }
# deltas KEY...: sets D_<end>_<counter> to the change since the last call.
# The counters are read until two readings agree, so that no straggler (a
# TCP FIN, a neighbour probe) crosses between the reads of one end and the
# other's.
deltas() {
  local key round stable
  local -A before
  for round in $(seq 20); do
    read_counters "$@"
    stable=1
    for key in "$@"; do
      [[ ${NOW[$key]} == "${before[$key]:-}" ]] || stable=0
      before[$key]=${NOW[$key]}
    done
    ((stable)) && break
    sleep 0.2
  done
  for key in "$@"; do
    printf -v "D_${key%%.*}_${key#*.}" '%s' $((NOW[$key] - ${LAST[$key]:-0}))
    LAST[$key]=${NOW[$key]}
  done
}

log "devices: veth ends, their peers hidden"
ip -d -n "$NS_A" link show "$A" | grep -q "veth" && ok "$A is a veth" || fail "$A: $(ip -d -n "$NS_A" link show "$A")"
[[ -z $(ip -o link show | grep -E "v$A|t$A|v$B|t$B") ]] && ok "no hidden device in epaird's namespace" \
  || fail "hidden devices seen: $(ip -o link show)"
[[ $(ip netns list) != *hidden* ]] && ok "the hidden namespace is not in ip netns list" || fail "$(ip netns list)"
[[ $(hidden ip -o link show | grep -cE "(v|t)$PAIR[ab]") == 4 ]] && ok "4 hidden devices in $HIDDEN" \
  || fail "hidden: $(hidden ip -o link show)"
# The first pair has slots 0 and 1: its veths at 16 + slot, where the
# program's array finds them, its TAPs at 16 + 8192 + slot.
indexes="$(hidden_index "v$A") $(hidden_index "v$B") $(hidden_index "t$A") $(hidden_index "t$B")"
[[ $indexes == "16 17 8208 8209" ]] && ok "hidden devices at their slots' indexes: $indexes" || fail "indexes: $indexes"
# tcx holds the programs from Linux 6.6 on (e2e.traffic_tc tests tc's
# clsact, which older kernels need).
if printf '%s\n' 6.6 "$(uname -r)" | sort -V -C; then
  filters=$(hidden tc filter show dev "v$A" ingress)
  [[ -z $filters ]] && grep -q "attached by tcx" "$WORK/epaird.log" && ok "programs attached by tcx" \
    || fail "not by tcx: filters '$filters', $(grep -o 'attached by.*' "$WORK/epaird.log")"
fi
[[ $(show_field "$A" datapath) == kernel && $(ctl "$A") == *"datapath: kernel"* ]] && ok "shown: datapath kernel" \
  || fail "datapath: $(show_field "$A" datapath)"

log "ping both ways"
ip netns exec "$NS_A" ping -c 3 -i 0.2 -W 2 10.99.0.2 >/dev/null && ok "IPv4 a->b" || fail "IPv4 a->b"
ip netns exec "$NS_B" ping -c 3 -i 0.2 -W 2 10.99.0.1 >/dev/null && ok "IPv4 b->a" || fail "IPv4 b->a"

log "counters exact: iperf3 TCP, then UDP with 64-byte datagrams"
COUNTERS=(A.opackets A.obytes B.ipackets B.ibytes B.opackets A.ipackets B.rx_packets)
deltas "${COUNTERS[@]}"
ip netns exec "$NS_B" iperf3 -s -1 -D -B 10.99.0.2 --logfile "$WORK/iperf-s.log"
wait_for 5 ip netns exec "$NS_B" bash -c "ss -ltn | grep -q ':5201'"
ip netns exec "$NS_A" iperf3 -c 10.99.0.2 -t 2 >/dev/null || fail "iperf3 TCP"
deltas "${COUNTERS[@]}"
((D_A_opackets > 10000 && D_A_opackets == D_B_ipackets && D_A_obytes == D_B_ibytes && D_B_opackets == D_A_ipackets)) \
  && ok "TCP: $A sent $D_A_opackets frames ($D_A_obytes bytes) = $B received; $D_B_opackets back" \
  || fail "TCP: $A opackets $D_A_opackets obytes $D_A_obytes, $B ipackets $D_B_ipackets ibytes $D_B_ibytes; back $D_B_opackets/$D_A_ipackets"
# A port of its own: the first server may still be on its way out.
ip netns exec "$NS_B" iperf3 -s -1 -D -B 10.99.0.2 -p 5202 --logfile "$WORK/iperf-s2.log"
wait_for 5 ip netns exec "$NS_B" bash -c "ss -ltn | grep -q ':5202'"
ip netns exec "$NS_A" iperf3 -c 10.99.0.2 -p 5202 -u -l 22 -b 20M -t 1 >/dev/null || fail "iperf3 UDP"
deltas "${COUNTERS[@]}"
((D_A_opackets > 10000 && D_A_opackets == D_B_ipackets && D_A_obytes == D_B_ibytes && D_B_rx_packets == D_B_ipackets)) \
  && ok "UDP: $A sent $D_A_opackets frames = $B received = Linux's rx_packets on $B" \
  || fail "UDP: $A opackets $D_A_opackets, $B ipackets $D_B_ipackets, Linux rx_packets $D_B_rx_packets"

log "MTU + 18: the longest frame passes, a GSO segment longer is dropped and counted"
# send_frames COUNT LENGTH GSO_SIZE: frames from a packet socket on $A, TCP
# segments to 10.99.0.2 with a VLAN tag (which lets a packet socket send
# MTU + 18); with a GSO_SIZE, untagged, GSO packets of segments that long.
send_frames() {
  ip netns exec "$NS_A" python3 - "$A" "$1" "$2" "$3" <<'PY'
import socket, struct, sys
ifname, count, length, gso_size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.setsockopt(263, 15, 1)  # SOL_PACKET, PACKET_VNET_HDR
s.bind((ifname, 0))
tag = b"" if gso_size else b"\x81\x00\x00\x07"
payload = bytes(length - 14 - len(tag) - 20 - 20)
tcp = struct.pack("!HHIIBBHHH", 40000, 9, 0, 0, 5 << 4, 0x10, 65535, 0, 0) + payload
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0x4000, 64, 6, 0,
                 socket.inet_aton("10.99.0.1"), socket.inet_aton("10.99.0.2"))
frame = b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x01" + tag + b"\x08\x00" + ip + tcp
# virtio_net_hdr: checksum to complete from the TCP header; TCPv4 GSO if asked.
l3 = 14 + len(tag)
hdr = struct.pack("=BBHHHH", 1, 1 if gso_size else 0, l3 + 40, gso_size, l3 + 20, 16)
for _ in range(count):
    s.send(hdr + frame)
PY
}
# The namespace's own frames (neighbour discovery) may cross meanwhile: the
# sums are at least what was sent, the errors exactly.
deltas A.opackets A.obytes A.oerrors
send_frames 100 1518 0 || fail "send 1518-byte frames"
deltas A.opackets A.obytes A.oerrors
((D_A_opackets >= 100 && D_A_obytes >= 151800 && D_A_oerrors == 0)) \
  && ok "100 frames of 1518 bytes (MTU 1500 + 18) sent and counted" \
  || fail "1518 bytes: opackets +$D_A_opackets, obytes +$D_A_obytes, oerrors +$D_A_oerrors"
send_frames 100 4054 2000 || fail "send GSO packets"
deltas A.opackets A.obytes A.oerrors
((D_A_oerrors == 100 && D_A_obytes < 100 * 4054)) && ok "100 GSO packets of 2000-byte segments: dropped, oerrors +100" \
  || fail "GSO 2000: opackets +$D_A_opackets, obytes +$D_A_obytes, oerrors +$D_A_oerrors"

log "carrier follows the peer"
ctl "$B" down || fail "down $B"
wait_for 5 bash -c "ip -n '$NS_A' link show '$A' | grep -q NO-CARRIER" && ok "$B down: $A has NO-CARRIER" \
  || fail "$A: $(ip -n "$NS_A" link show "$A")"
ip netns exec "$NS_A" ping -c 1 -W 1 10.99.0.2 >/dev/null && fail "ping through a pair whose peer is down" \
  || ok "no ping while $B is down"
# Sent meanwhile, a frame meets the hidden veth down: Linux counts it in
# the end's own TX dropped (ip -s link) and epair in its oerrors (epaird(8)).
tx_dropped() { ip netns exec "$NS_A" cat "/sys/class/net/$A/statistics/tx_dropped"; }
before=$(tx_dropped)
deltas A.oerrors A.opackets
send_frames 20 100 0 || fail "send while $B is down"
(($(tx_dropped) >= before + 20)) && ok "20 frames sent while $B is down: in $A's TX dropped" \
  || fail "TX dropped $before -> $(tx_dropped)"
deltas A.oerrors A.opackets
((D_A_oerrors >= 20 && D_A_opackets == 0)) \
  && ok "and in $A's oerrors: +$D_A_oerrors" || fail "oerrors +$D_A_oerrors, opackets +$D_A_opackets"
ctl "$B" up || fail "up $B"
wait_for 5 bash -c "ip -n '$NS_A' link show '$A' | grep -q LOWER_UP" && ok "$B up: carrier back on $A" \
  || fail "$A: $(ip -n "$NS_A" link show "$A")"
wait_for 5 ip netns exec "$NS_A" ping -c 1 -W 1 10.99.0.2 && ok "ping again" || fail "no ping after up"

log "no thread an end, no CPU while idle; the devices of pairs made and destroyed go"
threads=$(ls "/proc/$DAEMON_PID/task" | wc -l)
hidden_before=$(hidden ip -o link show | wc -l)
made=()
for _ in $(seq 20); do made+=("$(ctl epair create)") || fail "create"; done
for name in "${made[@]}"; do ctl "$name" up && ctl "${name%a}b" up || fail "up $name"; done
more=$(ls "/proc/$DAEMON_PID/task" | wc -l)
((more == threads)) && ok "21 pairs, $more threads, as with one" || fail "threads: $threads with one pair, $more with 21"
ticks=$(daemon_ticks_in_a_second)
((ticks <= 2)) && ok "idle: $ticks ticks of epaird CPU in 1 s" || fail "idle: $ticks ticks in 1 s"
for name in "${made[@]}"; do ctl "$name" destroy || fail "destroy $name"; done
[[ $(hidden ip -o link show | wc -l) == "$hidden_before" ]] && ok "20 pairs destroyed: their 80 hidden devices gone" \
  || fail "hidden devices: $hidden_before before, $(hidden ip -o link show | wc -l) after"

log "an index the next pair's hidden devices need, taken: one line, nothing made, nothing lost"
# The next pair takes slots 2 and 3: its first end's veth 18, TAP 8210.
pairs_before=$(ctl -l)
for squat in 18 8210; do
  hidden ip link add squat index "$squat" type veth peer name squatp || fail "squat $squat"
  if ((squat == 18)); then want="index 18 of its hidden veth is taken"; else want="interface index 8210 is taken"; fi
  expect_error "$want" "$EPAIRCTL" epair create
  [[ $(ctl -l) == "$pairs_before" && $(hidden ip -o link show | wc -l) == $((hidden_before + 2)) ]] \
    && ok "index $squat taken: no pair, no device made" || fail "after: $(ctl -l); $(hidden ip -o link show)"
  hidden ip link del squat
done
made=$(ctl epair create) && [[ $(hidden_index "v$made") == 18 ]] && ok "freed: $made made, its veth at 18" \
  || fail "create after the squat: $made, $(hidden ip -o link show)"
ip netns exec "$NS_A" ping -c 1 -W 2 10.99.0.2 >/dev/null && ok "$A and $B go on" || fail "ping after the squat"
ctl "$made" destroy || fail "destroy $made"

log "kill -9 epaird during a ping every 10 ms: none lost; counters go on"
ip netns exec "$NS_A" ping -c 300 -i 0.01 -W 1 10.99.0.2 >"$WORK/ping.log" 2>&1 &
PING=$!
HELPER_PIDS+=($PING)
sleep 0.5
before=$(counter "$A" opackets)
oerrors=$(counter "$A" oerrors)
stop_daemon KILL
sleep 1
start_daemon
wait "$PING"
lost=$(grep -o "[0-9]*% packet loss" "$WORK/ping.log")
[[ $lost == "0% packet loss" ]] && ok "300 pings across the restart: $lost" || fail "ping: $(tail -2 "$WORK/ping.log")"
after=$(counter "$A" opackets)
((after >= before + 200)) && ok "$A opackets went on: $before before the kill, $after after" \
  || fail "$A opackets $before -> $after"
(($(counter "$A" oerrors) >= oerrors && oerrors >= 120)) && ok "$A oerrors kept: $oerrors, now $(counter "$A" oerrors)" \
  || fail "$A oerrors $oerrors -> $(counter "$A" oerrors)"
[[ $(show_field "$A" datapath) == kernel ]] && ok "re-adopted on the kernel path" || fail "$(show_field "$A" datapath)"
grep -q "adopted the programs (tcx\?) and counters" "$WORK/epaird.log" && ok "programs and counters adopted" \
  || fail "not adopted: $(grep -i kernel "$WORK/epaird.log")"

log "through the engine: an impairment, a capture"
ctl "$A" impair delay 5ms || fail "impair"
[[ $(show_field "$A" datapath) == "engine (impair)" && $(show_field "$B" datapath) == kernel ]] \
  && ok "$A impaired: $A's frames through the engine, $B's not" \
  || fail "datapath $A: $(show_field "$A" datapath), $B: $(show_field "$B" datapath)"
rtt=$(ip netns exec "$NS_A" ping -c 3 -i 0.2 -W 2 10.99.0.2 | grep -o "rtt.*" | cut -d/ -f5)
[[ -n $rtt ]] && (($(printf '%.0f' "$rtt") >= 5)) && ok "ping through the impairment: $rtt ms" || fail "ping: $rtt"
ctl "$A" impair clear || fail "impair clear"
[[ $(show_field "$A" datapath) == kernel ]] && ok "cleared: the kernel's way again" || fail "$(show_field "$A" datapath)"
"$EPAIRCTL" capture "$B" -c 4 -w "$WORK/b.pcap" 2>"$WORK/cap.err" &
CAP=$!
HELPER_PIDS+=($CAP)
wait_for 5 grep -q "^capturing on" "$WORK/cap.err" || fail "capture did not start: $(cat "$WORK/cap.err")"
[[ $(show_field "$A" datapath) == "engine (capture)" && $(show_field "$B" datapath) == "engine (capture)" ]] \
  && ok "a capture on $B: both ways through the engine" || fail "datapath: $(show_field "$A" datapath)"
ip netns exec "$NS_A" ping -c 2 -i 0.2 -W 2 10.99.0.2 >/dev/null && ok "ping while captured" || fail "ping captured"
wait "$CAP" && [[ $(tcpdump -r "$WORK/b.pcap" 2>/dev/null | grep -c ICMP) -ge 2 ]] && ok "the capture saw the pings" \
  || fail "capture: $(tcpdump -r "$WORK/b.pcap" 2>&1)"
wait_for 5 bash -c "[[ \$('$EPAIRCTL' $A) == *'datapath: kernel'* ]]" && ok "capture over: the kernel's way again" \
  || fail "after the capture: $(show_field "$A" datapath)"

# received_as MAC: one ping to 10.99.0.2 with its neighbour entry set to
# MAC; prints ANSWERED/TYPE, TYPE as a packet socket on $B saw the request:
# In (for $B), B (broadcast), M (multicast), P (another host's).
received_as() {
  ip netns exec "$NS_A" ip neigh replace 10.99.0.2 lladdr "$1" dev "$A" nud permanent
  # Gone before tcpdump starts: the last one's "listening on" is not its.
  rm -f "$WORK/seen" "$WORK/seen.err"
  ip netns exec "$NS_B" timeout 10 tcpdump -Z root --immediate-mode -l -n -c 1 -i any 'icmp[icmptype] == 8' \
    >"$WORK/seen" 2>"$WORK/seen.err" &
  local dump=$!
  wait_for 5 grep -q "listening on" "$WORK/seen.err" || fail "tcpdump did not start: $(cat "$WORK/seen.err")"
  local answered
  answered=$(ip netns exec "$NS_A" ping -c 1 -W 1 10.99.0.2 | awk '/received/ {print $4}')
  wait "$dump"
  echo "$answered/$(awk '{print $3}' "$WORK/seen")"
}
# expect_received WAY MAC=ANSWERED/TYPE...: what a plain veth pair gives.
expect_received() {
  local way=$1 what got
  shift
  for what in "$@"; do
    got=$(received_as "${what%%=*}")
    [[ $got == "${what#*=}" ]] && ok "$way, to ${what%%=*}: answered/type $got" \
      || fail "$way, to ${what%%=*}: answered/type $got, a veth gives ${what#*=}: $(cat "$WORK/seen" "$WORK/seen.err")"
  done
  ip netns exec "$NS_A" ip neigh del 10.99.0.2 dev "$A"
}
# await_ether END MAC: epaird has seen END's new address.
await_ether() { wait_for 5 bash -c "[[ \$('$EPAIRCTL' $1) == *'ether $2'* ]]" || fail "epaird did not see $1's $2"; }

log "received as from a veth: frames for another host's address not taken, broadcast and multicast marked so"
MAC_B=$(show_field "$B" ether)
OTHER=02:11:22:33:44:55
RECEIVED_AS=("$MAC_B=1/In" "$OTHER=0/P" "ff:ff:ff:ff:ff:ff=1/B" "01:00:5e:00:00:fb=1/M")
expect_received "the kernel's way" "${RECEIVED_AS[@]}"
ctl "$A" impair limit 1000 || fail "impair limit 1000"
[[ $(show_field "$A" datapath) == "engine (impair)" ]] || fail "datapath $(show_field "$A" datapath)"
expect_received "through the engine" "${RECEIVED_AS[@]}"
ctl "$A" impair clear || fail "impair clear"
ip netns exec "$NS_B" ip link set "$B" address "$OTHER"
await_ether "$B" "$OTHER"
expect_received "$B's address changed in its namespace" "$OTHER=1/In" "$MAC_B=0/P"
ctl "$B" ether "$MAC_B" || fail "ether $MAC_B"
await_ether "$B" "$MAC_B"
expect_received "and back by epairctl" "$MAC_B=1/In" "$OTHER=0/P"

# 4000 bytes of TCP payload at 1000 a segment, 54 bytes of headers: each
# packet is 4 frames of 1054 bytes on a wire. An impairment that holds
# nothing (limit) sends them through the engine.
log "GSO packets count as the frames they become, on the kernel's way and the engine's alike"
for way in kernel engine; do
  [[ $way == engine ]] && { ctl "$A" impair limit 1000 || fail "impair $A"; }
  deltas A.opackets A.obytes B.ipackets B.ibytes
  send_frames 100 4054 1000 || fail "send GSO packets"
  deltas A.opackets A.obytes B.ipackets B.ibytes
  ((D_A_opackets >= 400 && D_A_opackets < 410 && D_A_obytes >= 421600 && D_A_obytes < 422600 \
    && D_B_ipackets == D_A_opackets && D_B_ibytes == D_A_obytes)) \
    && ok "$way: 100 packets, $D_A_opackets frames and $D_A_obytes bytes sent and received" \
    || fail "$way: opackets +$D_A_opackets, obytes +$D_A_obytes; $B ipackets +$D_B_ipackets, ibytes +$D_B_ibytes"
done
ctl "$A" impair clear || fail "impair clear"

# The sender sends as fast as it can, so the test is an account: the
# engine's way cannot keep up, and what waits for it in a full hidden TAP
# (or its own queue) is dropped and counted in the sender's oqdrops. Every
# datagram A's socket sent is counted as sent or dropped (nothing else
# leaves A meanwhile: its neighbour is pinned, its IPv6 off); every one
# counted as sent arrives exactly once (or is counted at B: a delivery
# dropped, the socket's buffer full). The impairment holds no frame
# (clearing one drops what it holds, as removing a qdisc does); the capture
# reads nothing.
log "switching under traffic at full rate: 20 impairments and captures set and cleared, every datagram accounted"
ip -n "$NS_A" neigh replace 10.99.0.2 dev "$A" nud permanent \
  lladdr "$(ip -n "$NS_B" -o link show "$B" | grep -o 'link/ether [^ ]*' | cut -d' ' -f2)"
ip netns exec "$NS_A" sysctl -qw "net.ipv6.conf.$A.disable_ipv6=1"
deltas A.opackets A.oerrors A.oqdrops B.iqdrops B.ierrors
ip netns exec "$NS_B" python3 - >"$WORK/seq.txt" <<'PY' &
import socket, struct
def rcvbuf_errors():
    lines = [l.split() for l in open("/proc/net/snmp") if l.startswith("Udp:")]
    return int(lines[1][lines[0].index("RcvbufErrors")])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, 33, 64 << 20)  # SO_RCVBUFFORCE
s.bind(("10.99.0.2", 9999))
s.settimeout(3)
before = rcvbuf_errors()
seen = bytearray(1 << 24)
buffer = bytearray(64)
distinct = twice = top = 0
try:
    while True:
        s.recv_into(buffer)
        seq = struct.unpack_from("!I", buffer)[0]
        if seen[seq]:
            twice += 1
        else:
            seen[seq] = 1
            distinct += 1
        top = max(top, seq + 1)
except socket.timeout:
    pass
print(distinct, twice, top, rcvbuf_errors() - before)
PY
RECEIVER=$!
HELPER_PIDS+=($RECEIVER)
wait_for 5 ip netns exec "$NS_B" bash -c "ss -lun | grep -q ':9999'"
ip netns exec "$NS_A" python3 - "$WORK/stop" >"$WORK/sent.txt" <<'PY' &
import os, socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect(("10.99.0.2", 9999))
payload = bytearray(32)
seq = 0
while seq % 4096 or not os.path.exists(sys.argv[1]):
    struct.pack_into("!I", payload, 0, seq)
    s.send(payload)
    seq += 1
print(seq)
PY
SENDER=$!
HELPER_PIDS+=($SENDER)
for round in $(seq 20); do
  ctl "$A" impair limit 1000 || fail "impair, round $round"
  "$EPAIRCTL" capture "$A" -w /dev/null 2>/dev/null &
  capture=$!
  sleep 0.05
  ctl "$A" impair clear || fail "clear, round $round"
  kill -INT "$capture"
  wait "$capture"
done
touch "$WORK/stop"
wait "$SENDER"
wait "$RECEIVER"
read -r sent <"$WORK/sent.txt"
read -r distinct twice top rcvbuf <"$WORK/seq.txt"
deltas A.opackets A.oerrors A.oqdrops B.iqdrops B.ierrors
dropped=$((D_A_oerrors + D_A_oqdrops))
delivered=$((D_A_opackets - D_B_iqdrops - D_B_ierrors - rcvbuf))
account="$sent sent: $D_A_opackets counted sent, $D_A_oqdrops oqdrops, $D_A_oerrors oerrors; $distinct arrived \
(highest $top), $twice twice; B: $D_B_iqdrops iqdrops, $D_B_ierrors ierrors, $rcvbuf over its socket's buffer"
((D_A_opackets + dropped == sent)) && ok "every datagram sent is counted as sent or dropped ($account)" \
  || fail "counted at A: $account"
((distinct == delivered && twice == 0 && top <= sent)) && ok "each counted as sent arrived once" \
  || fail "switches: $account"
((D_A_opackets >= sent / 10)) && ok "a tenth or more went through" || fail "too few through: $account"

log "the engine's way with epaird stopped: the hidden TAP's queue (4096) fills, what it drops is counted"
ctl "$A" impair limit 1000 || fail "impair"
deltas A.opackets A.oerrors A.oqdrops
kill -STOP "$DAEMON_PID"
ip netns exec "$NS_A" python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(6000):
    s.sendto(bytes(32), ("10.99.0.2", 9999))'
kill -CONT "$DAEMON_PID"
deltas A.opackets A.oerrors A.oqdrops
((D_A_opackets + D_A_oqdrops == 6000 && D_A_oqdrops >= 6000 - 4096 && D_A_oerrors == 0)) \
  && ok "6000 sent: $D_A_opackets went on when epaird did, $D_A_oqdrops counted in oqdrops" \
  || fail "6000 sent: $D_A_opackets opackets, $D_A_oqdrops oqdrops, $D_A_oerrors oerrors"
ctl "$A" impair clear || fail "clear"

# A sends nothing meanwhile (its neighbour pinned, its IPv6 off), and B
# nothing to A: A's output counters and B's input ones stay as they are,
# the engine's share with the kernel's.
log "kill -9 after traffic through the engine: every counter as it was"
both_counters() {
  local end
  for end in "$A" "$B"; do
    ctl --json "$end" | python3 -c "
import json, sys
interface = json.load(sys.stdin)['interfaces'][0]
print(interface['name'], ' '.join(f'{k}={v}' for k, v in sorted(interface['counters'].items())))"
  done
}
both_counters >"$WORK/counters.before"
stop_daemon KILL
start_daemon
both_counters >"$WORK/counters.after"
python3 - "$WORK/counters.before" "$WORK/counters.after" "$A" <<'PY' && ok "$A's and $B's counters as they were" \
  || fail "counters after kill -9: $(paste -d'\n' "$WORK/counters.before" "$WORK/counters.after")"
import sys
def read(path):
    return {line.split()[0]: dict(kv.split("=") for kv in line.split()[1:]) for line in open(path)}
before, after, a = read(sys.argv[1]), read(sys.argv[2]), sys.argv[3]
if len(before) != 2 or before.keys() != after.keys():
    sys.exit(1)
for name, counters in before.items():
    for key, value in counters.items():
        kept = (key[0] == "o") == (name == a)  # A's output, B's input: unchanged
        if kept and after[name][key] != value or int(after[name][key]) < int(value):
            sys.exit(1)
PY
ip netns exec "$NS_A" sysctl -qw "net.ipv6.conf.$A.disable_ipv6=0"

log "a kernel path that cannot open: kernel refuses to start, auto takes tap"
mkdir -p "$WORK/s2/hidden.netns"
err=$("$EPAIRD" --socket "$WORK/s2.sock" --state-dir "$WORK/s2" --datapath kernel 2>&1 >/dev/null)
status=$?
((status == 1)) && [[ $(grep -c '' <<<"$err") == 1 && $err == *"hidden namespace $WORK/s2/hidden.netns"* ]] \
  && ok "--datapath kernel: exit 1, $err" || fail "--datapath kernel: exit $status, '$err'"
"$EPAIRD" --socket "$WORK/s2.sock" --state-dir "$WORK/s2" --datapath auto >"$WORK/s2.log" 2>&1 &
AUTO=$!
HELPER_PIDS+=($AUTO)
wait_for 5 bash -c "EPAIR_SOCKET='$WORK/s2.sock' '$EPAIRCTL' -C" || fail "--datapath auto did not start: $(cat "$WORK/s2.log")"
made=$(EPAIR_SOCKET="$WORK/s2.sock" "$EPAIRCTL" epair create)
[[ $(EPAIR_SOCKET="$WORK/s2.sock" "$EPAIRCTL" "$made") == *"datapath: tap"* ]] \
  && grep -q "new pairs take the tap data path" "$WORK/s2.log" && ok "--datapath auto: a TAP pair, and the log says why" \
  || fail "auto: $(cat "$WORK/s2.log")"
EPAIR_SOCKET="$WORK/s2.sock" "$EPAIRCTL" "$made" destroy
kill "$AUTO"
wait "$AUTO"

log "destroy: the ends and their hidden devices go"
ctl "$A" destroy || fail "destroy"
ip -n "$NS_A" link show "$A" >/dev/null 2>&1 && fail "$A still exists" || ok "$A is gone"
ip -n "$NS_B" link show "$B" >/dev/null 2>&1 && fail "$B still exists" || ok "$B is gone"
wait_for 5 bash -c "[[ -z \$(nsenter --net='$HIDDEN' ip -o link show | grep -E '(v|t)$PAIR[ab]') ]]" \
  && ok "no hidden device left" || fail "left: $(hidden ip -o link show)"
finish
