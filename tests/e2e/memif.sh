#!/bin/bash
# memif ends against DPDK's net_memif (dpdk-testpmd, no hugepages, no PCI):
# testpmd sends into end b and a namespace behind end a counts the frames,
# and the reverse (jumbo frames in chained buffers too), with epair as
# server and as client; the link follows the connection; a wrong secret or
# id is refused with a reason and the peer may come back; polling costs a
# CPU, interrupts cost none when idle, also moderated (rx-usecs), which
# still counts every frame; testpmd's chained jumbo frames and two queue
# pairs; the client API's example answers pings; two epairs joined by
# memif carry a ping; settings survive a restart; detach gives the TAP
# back.
source "$(dirname "$0")/lib.sh"
command -v dpdk-testpmd >/dev/null || { echo "SKIP: dpdk-testpmd missing (Debian package dpdk-dev)"; exit 77; }
: "${EPAIR_MEMIF_PONG:?path of epair-memif-pong}"
start_daemon
new_ns NS_A a
A=$(ctl epair create) && B=${A%a}b || fail "create"
# Only the test's frames: no IPv6 chatter from the namespace.
ip netns exec "$NS_A" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
ctl "$A" vnet "$NS_A" up mtu 9000 || fail "configure $A"
ctl "$B" up mtu 9000 || fail "configure $B"
SOCK="$WORK/memif.sock"
# Seconds between bursts of 32 frames from the namespace: slower under a
# sanitizer, so that epaird keeps up and every frame can be counted.
PACE=$([[ -n ${EPAIR_SANITIZER:-} ]] && echo 0.004 || echo 0.001)
# Seconds each testpmd sends for: even under a sanitizer, tens of thousands
# of frames, enough for every count below.
SEND_SECONDS=1

mf() { show_field "$B" "memif.$1"; }
rx_packets() { ip netns exec "$NS_A" cat "/sys/class/net/$A/statistics/rx_packets"; }
rx_bytes() { ip netns exec "$NS_A" cat "/sys/class/net/$A/statistics/rx_bytes"; }
testpmd_sent() { grep -A2 "Forward statistics for port 0" "$WORK/$1.log" | grep -o "TX-packets: *[0-9]*" | grep -o '[0-9]*$'; }

# start_testpmd NAME ROLE MODE [DEVARGS [OPTIONS]]: dpdk-testpmd on one memif
# port in the background (output in $WORK/NAME.log); stop_testpmd NAME ends it.
start_testpmd() {
  local name=$1 role=$2 mode=$3 extra=${4:-} options=${5:-}
  rm -rf "/var/run/dpdk/ep$RUN_ID$name"
  dpdk-testpmd -l 0-1 --main-lcore 1 --no-huge -m 512 --no-pci --file-prefix="ep$RUN_ID$name" --log-level=7 \
    --vdev="net_memif0,role=$role,socket=$SOCK,socket-abstract=no$extra" -- \
    --forward-mode="$mode" --stats-period 1 --no-mlockall --total-num-mbufs=16384 --mbuf-size=2176 $options \
    </dev/null >"$WORK/$name.log" 2>&1 &
  HELPER_PIDS+=($!)
  printf -v "PID_$name" '%s' $!
}
stop_testpmd() {
  local pid_var="PID_$1"
  kill -INT "${!pid_var}" 2>/dev/null
  wait "${!pid_var}" 2>/dev/null
  rm -rf "/var/run/dpdk/ep$RUN_ID$1"
}
# testpmd_stat NAME FIELD: the last figure testpmd printed for RX-packets,
# RX-bytes, TX-packets... in its port statistics.
testpmd_stat() { grep -o "$2: *[0-9]*" "$WORK/$1.log" | tail -1 | grep -o '[0-9]*$'; }
# testpmd_has NAME FIELD COUNT: testpmd NAME printed COUNT (it prints its
# statistics every second), for wait_for.
testpmd_has() { [[ $(testpmd_stat "$1" "$2") == "$3" ]]; }
# send_from_testpmd NAME [OPTIONS]: testpmd NAME (client, txonly) sends
# into $B for SEND_SECONDS and leaves; SENT (testpmd's count), RECEIVED (the memif
# end's), IPACKETS ($A's) and DROPPED ($B's oqdrops) over that time.
send_from_testpmd() {
  local received0 ipackets0 oqdrops0
  received0=$(mf counters.received)
  ipackets0=$(counter "$A" ipackets)
  oqdrops0=$(counter "$B" oqdrops)
  start_testpmd "$1" client txonly ",secret=s3cret" "${2:-}"
  wait_for 10 bash -c "[[ \$('$EPAIRCTL' $B) == *'memif link: connected'* ]]" || fail "$1: sender did not connect"
  sleep "$SEND_SECONDS"
  stop_testpmd "$1"
  wait_for 5 bash -c "[[ \$('$EPAIRCTL' $B) == *'memif link: not connected'* ]]"
  SENT=$(testpmd_sent "$1")
  RECEIVED=$(($(mf counters.received) - received0))
  IPACKETS=$(($(counter "$A" ipackets) - ipackets0))
  DROPPED=$(($(counter "$B" oqdrops) - oqdrops0))
}
# send_frames COUNT SIZE: COUNT frames of SIZE bytes from the namespace
# through end a, on a packet socket, 32 at a time: like a NIC's, a memif
# ring that is full drops, and testpmd shares two CPUs with this sender.
send_frames() {
  # The TAP's carrier follows the connection a moment later; without it
  # Linux drops what the namespace sends.
  wait_for 10 bash -c "ip -n '$NS_A' link show '$A' | grep -q LOWER_UP" || fail "no carrier on $A to send with"
  ip netns exec "$NS_A" python3 - "$A" "$1" "$2" "$PACE" <<'PY'
import socket, sys, time
ifname, count, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
frame = bytes.fromhex("020000000099") + bytes.fromhex("0200000000aa") + b"\x88\xb5"
frame += bytes(i & 0xff for i in range(size - len(frame)))
pause = float(sys.argv[4])
for i in range(count):
    if i % 32 == 0:
        time.sleep(pause)
    while True:
        try:
            s.send(frame)
            break
        except BlockingIOError:
            pass
PY
}

log "settings: one-line errors, nothing changed"
expect_error "memif: needs 'socket PATH'" ctl "$B" attach memif role server
expect_error "memif: socket must be an absolute path" ctl "$B" attach memif socket relative.sock
expect_error "memif: ring-size must be a power of two: '1000'" ctl "$B" attach memif socket "$SOCK" ring-size 1000
expect_error "memif: role is 'server' or 'client', not 'master'" ctl "$B" attach memif socket "$SOCK" role master
expect_error "memif: secret must be 1 to 24 printable characters" \
  ctl "$B" attach memif socket "$SOCK" secret 0123456789012345678901234
expect_error "memif: queues must be a whole number from 1 to 255: '0'" ctl "$B" attach memif socket "$SOCK" queues 0
[[ $(mf text) == None ]] && ok "not attached by a refused command" || fail "attached"

log "server: testpmd (client, txonly) sends into $B, the namespace behind $A counts"
ctl "$B" attach memif socket "$SOCK" secret s3cret || fail "attach memif"
[[ $(mf text) == "socket $SOCK role server id 0 secret (set) ring-size 1024 buffer-size 2048 queues 1 rx-mode interrupt" ]] \
  && ok "shown, secret hidden" || fail "shown: $(mf text)"
[[ $(mf connected) == False ]] && ip netns exec "$NS_A" ip link show "$A" | grep -q NO-CARRIER \
  && ok "no peer: no carrier on $A" || fail "carrier without a peer"
ipackets0=$(counter "$A" ipackets)
oqdrops0=$(counter "$B" oqdrops)
rx0=$(rx_packets)
start_testpmd tx client txonly ",secret=s3cret"
wait_for 10 bash -c "[[ \$('$EPAIRCTL' --json $B | python3 -c \"import json,sys; print(json.load(sys.stdin)['interfaces'][0]['memif']['connected'])\") == True ]]" \
  && ok "connected: $(mf peer)" || fail "testpmd did not connect: $(tail -5 "$WORK/tx.log")"
ip netns exec "$NS_A" ip link show "$A" | grep -q LOWER_UP && ok "carrier on $A while connected" || fail "no carrier"
sleep "$SEND_SECONDS"
stop_testpmd tx
wait_for 5 bash -c "ip netns exec '$NS_A' ip link show '$A' | grep -q NO-CARRIER" && ok "peer gone: no carrier" \
  || fail "carrier after the peer left"
sent=$(grep -A2 "Forward statistics for port 0" "$WORK/tx.log" | grep -o "TX-packets: *[0-9]*" | grep -o '[0-9]*$')
received=$(mf counters.received)
ipackets=$(($(counter "$A" ipackets) - ipackets0))
rx=$(($(rx_packets) - rx0))
# Under a sanitizer the end's queue may overflow: counted in $B's oqdrops.
dropped=$(($(counter "$B" oqdrops) - oqdrops0))
((sent > 10000 && sent == received && received == ipackets + dropped && ipackets == rx)) \
  && ok "testpmd sent $sent = memif received = $A ipackets (+ $dropped queue drops) = the namespace's rx_packets" \
  || fail "sent $sent, memif received $received, $A ipackets $ipackets, netns $rx; $(ctl "$B" | grep -E 'drop|memif frames')"
[[ $(mf last_disconnect) == "peer closed the control channel" ]] && ok "reason: $(mf last_disconnect)" \
  || fail "last_disconnect: $(mf last_disconnect)"

log "refused peers: wrong secret, wrong id; then one that is right"
start_testpmd bad client rxonly ",secret=wrong"
wait_for 10 bash -c "[[ \$('$EPAIRCTL' $B) == *'incorrect secret'* ]]" && ok "wrong secret: refused with a reason" \
  || fail "wrong secret: $(mf last_disconnect)"
stop_testpmd bad
start_testpmd bad client rxonly ",secret=s3cret,id=7"
wait_for 10 bash -c "[[ \$('$EPAIRCTL' $B) == *'no interface with id 7'* ]]" && ok "wrong id: refused with a reason" \
  || fail "wrong id: $(mf last_disconnect)"
stop_testpmd bad
(($(mf counters.disconnects) >= 3)) && ok "disconnects counted: $(mf counters.disconnects)" || fail "disconnects"

log "server: the namespace sends through $A, testpmd (client, rxonly) counts; jumbo frames chained"
start_testpmd rx client rxonly ",secret=s3cret"
wait_for 10 bash -c "[[ \$('$EPAIRCTL' $B) == *'memif link: connected'* ]]" || fail "rxonly did not connect"
before=$(mf counters.sent)
send_frames 20000 60
send_frames 200 9000
wait_for 10 testpmd_has rx RX-packets 20200
stop_testpmd rx
got=$(testpmd_stat rx RX-packets)
bytes=$(testpmd_stat rx RX-bytes)
sent=$(($(mf counters.sent) - before))
((sent == 20200 && got == 20200)) && ok "20,200 frames: memif sent $sent, testpmd received $got" \
  || fail "memif sent $sent (ring full $(mf counters.ring_full)), testpmd received $got"
((bytes == 20000 * 60 + 200 * 9000)) && ok "$bytes bytes: 9000-byte frames whole across 2048-byte buffers" \
  || fail "testpmd received $bytes bytes"

log "testpmd sends chained jumbo frames into $B: 8000 bytes in four 2000-byte segments arrive whole"
# testpmd copies them into four 2048-byte memif buffers. Every frame is
# accounted for where epair hands it over, on $A (at this rate the
# namespace's own backlog may drop some, which is Linux's count), and the
# sizes are read from a capture in the namespace. Four buffers, not three:
# DPDK 22.11's copy-mode transmit writes one descriptor past the free ones
# when a chained frame finds too few free, into the oldest frame epaird
# has not read yet, which then arrives in two (epairctl(8), MEMIF). With
# three buffers a frame on a ring of 1024 that happens whenever the ring
# fills (measured: 2048 + 3952 bytes, 9 of 5000 under load); with four the
# free count stays a multiple of four and it cannot.
ip netns exec "$NS_A" timeout 20 tcpdump -i "$A" -c 5000 -s 64 -w "$WORK/jumbo.pcap" 2>"$WORK/jumbo.err" &
TCPDUMP=$!
HELPER_PIDS+=($TCPDUMP)
wait_for 10 grep -q "listening on" "$WORK/jumbo.err" || fail "tcpdump did not start: $(cat "$WORK/jumbo.err")"
send_from_testpmd jumbo "--txpkts=2000,2000,2000,2000"
wait "$TCPDUMP"
grep -q "packet len=8000 - nb packet segments=4" "$WORK/jumbo.log" || fail "testpmd did not send 4-segment frames"
((IPACKETS > 1000 && RECEIVED == SENT && RECEIVED == IPACKETS + DROPPED)) \
  && ok "testpmd sent $SENT chained frames = memif received = $A ipackets $IPACKETS (+ $DROPPED queue drops)" \
  || fail "sent $SENT, received $RECEIVED; $A: $IPACKETS frames; $DROPPED drops"
# Each frame's length on the wire from its pcap record (orig_len), not
# from tcpdump's text, whose "length" differs by protocol.
read -r whole other < <(python3 - "$WORK/jumbo.pcap" <<'PY'
import struct, sys
data = open(sys.argv[1], "rb").read()
order = "<" if data[:4] == bytes.fromhex("d4c3b2a1") else ">"
whole = other = 0
at = 24
while at + 16 <= len(data):
    _, _, incl, orig = struct.unpack(order + "IIII", data[at:at + 16])
    at += 16 + incl
    if orig == 8000:
        whole += 1
    else:
        other += 1
print(whole, other)
PY
)
((whole >= 4900 && other == 0)) && ok "captured: $whole frames, each 8000 bytes long" \
  || fail "captured: $whole frames 8000 bytes long, $other of other lengths"

log "two queue pairs: testpmd --rxq=2 --txq=2 sends on both rings into $B"
ctl "$B" attach memif socket "$SOCK" secret s3cret queues 2 || fail "attach with queues 2"
send_from_testpmd q2 "--rxq=2 --txq=2"
grep -q "port 0: RX queue number: 2 Tx queue number: 2" "$WORK/q2.log" && ok "testpmd ran two queue pairs" \
  || fail "testpmd queues: $(grep 'queue number' "$WORK/q2.log")"
((SENT > 10000 && RECEIVED == SENT && IPACKETS + DROPPED == SENT)) \
  && ok "testpmd sent $SENT on two rings = memif received = $A ipackets $IPACKETS (+ $DROPPED queue drops)" \
  || fail "sent $SENT, received $RECEIVED, $A ipackets $IPACKETS, $DROPPED drops"
ctl "$B" attach memif socket "$SOCK" secret s3cret || fail "back to one queue"

log "a hostile client: every malformed message, region, ring and descriptor refused with its reason"
python3 "$(dirname "$0")/memif_hostile.py" "$SOCK" "$EPAIRCTL" "$B" "$NS_A" "$A" s3cret >"$WORK/hostile.log" 2>&1
hostile=$?
cat "$WORK/hostile.log"
((hostile == 0)) && ok "hostile client: all refused, epaird serving on" || fail "hostile client"

log "interrupt mode: an idle connected end costs no CPU; polling spins"
# cpu_beside_idle_peer NAME: epaird's CPU ticks over 1 s while testpmd NAME
# (rxonly) is connected to $B and nothing is sent; in TICKS.
cpu_beside_idle_peer() {
  start_testpmd "$1" client rxonly ",secret=s3cret"
  wait_for 10 bash -c "[[ \$('$EPAIRCTL' $B) == *'memif link: connected'* ]]" || fail "$1: peer did not connect"
  TICKS=$(daemon_ticks_in_a_second)
  stop_testpmd "$1"
}
cpu_beside_idle_peer idle
((TICKS <= 3)) && ok "interrupt mode, idle: $TICKS ticks of epaird CPU in 1 s" || fail "idle interrupt mode: $TICKS ticks"
ctl "$B" attach memif socket "$SOCK" secret s3cret rx-mode polling || fail "rx-mode polling"
cpu_beside_idle_peer poll
((TICKS >= 40)) && ok "polling mode: $TICKS ticks of epaird CPU in 1 s" || fail "polling mode: only $TICKS ticks"

log "interrupt moderation: rx-usecs counts every frame testpmd sends, and idle costs no CPU"
expect_error "memif: rx-usecs needs rx-mode interrupt" ctl "$B" attach memif socket "$SOCK" rx-mode polling rx-usecs 50
expect_error "memif: rx-usecs must be a whole number from 0 to 10000: '20000'" \
  ctl "$B" attach memif socket "$SOCK" rx-usecs 20000
[[ $(mf rx_mode) == polling ]] && ok "refused: the end keeps its settings" || fail "settings changed: $(mf text)"
ctl "$B" attach memif socket "$SOCK" secret s3cret rx-usecs 100 || fail "rx-usecs 100"
[[ $(mf rx_usecs) == 100 && $(mf text) == *" rx-mode interrupt rx-usecs 100" ]] && ok "shown: $(mf text)" \
  || fail "rx-usecs shown: $(mf text)"
send_from_testpmd mod
((SENT > 10000 && RECEIVED == SENT && IPACKETS + DROPPED == SENT)) \
  && ok "rx-usecs 100: testpmd sent $SENT = memif received = $A ipackets $IPACKETS (+ $DROPPED queue drops)" \
  || fail "rx-usecs 100: sent $SENT, received $RECEIVED, $A ipackets $IPACKETS, $DROPPED drops"
cpu_beside_idle_peer idle2
((TICKS <= 3)) && ok "rx-usecs 100, idle: $TICKS ticks of epaird CPU in 1 s" || fail "idle with rx-usecs: $TICKS ticks"

log "client: testpmd is the server"
ctl "$B" attach memif socket "$SOCK" role client id 3 || fail "attach as client"
before=$(rx_packets)
oqdrops0=$(counter "$B" oqdrops)
start_testpmd srv server txonly ",id=3"
wait_for 10 bash -c "[[ \$('$EPAIRCTL' $B) == *'memif link: connected'* ]]" && ok "connected to testpmd's server" \
  || fail "client did not connect: $(mf last_disconnect)"
sleep "$SEND_SECONDS"
stop_testpmd srv
sent=$(grep -A2 "Forward statistics for port 0" "$WORK/srv.log" | grep -o "TX-packets: *[0-9]*" | grep -o '[0-9]*$')
# What memif has received the engine may still be delivering: the counts
# are read once the namespace has them all, or after 5 s.
all_delivered() { (($(rx_packets) - before + $(counter "$B" oqdrops) - oqdrops0 >= ${sent:-1})); }
wait_for 5 all_delivered
dropped=$(($(counter "$B" oqdrops) - oqdrops0))
((sent > 10000 && $(mf counters.received) == sent && $(rx_packets) - before + dropped == sent)) \
  && ok "testpmd server sent $sent, the namespace counted them (+ $dropped queue drops)" \
  || fail "server sent $sent, namespace counted $(($(rx_packets) - before)); $(ctl "$B" | grep -E 'memif frames')"
start_testpmd srv2 server rxonly ",id=3"
wait_for 15 bash -c "[[ \$('$EPAIRCTL' $B) == *'memif link: connected'* ]]" && ok "reconnects to a new server" \
  || fail "no reconnect: $(mf last_disconnect)"
send_frames 5000 1500
wait_for 10 testpmd_has srv2 RX-packets 5000
stop_testpmd srv2
got=$(testpmd_stat srv2 RX-packets)
((got == 5000)) && ok "5,000 frames from the namespace reached testpmd's server" || fail "testpmd server got $got"

log "the client API: epair-memif-pong on $B answers ARP and pings from the namespace behind $A"
ctl "$A" inet 10.97.0.1/24 || fail "address on $A"
ctl "$B" attach memif socket "$SOCK" secret s3cret || fail "server end again"
"$EPAIR_MEMIF_PONG" --socket "$SOCK" --secret s3cret --inet 10.97.0.3 --count 5 --json >"$WORK/pong.json" \
  2>"$WORK/pong.log" &
PONG=$!
HELPER_PIDS+=($PONG)
wait_for 10 bash -c "[[ \$('$EPAIRCTL' $B) == *'memif link: connected to epair-memif-pong'* ]]" \
  && ok "connected: $(mf peer)" || fail "epair-memif-pong did not connect: $(cat "$WORK/pong.log")"
ip netns exec "$NS_A" ping -c 5 -i 0.2 -W 2 10.97.0.3 >"$WORK/ping.log" && ok "5 pings answered by a process on memif" \
  || fail "ping epair-memif-pong: $(tail -2 "$WORK/ping.log")"
wait "$PONG"
pong_status=$?
pong() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$WORK/pong.json" "$1"; }
((pong_status == 0)) && [[ $(pong echo_replies) == 5 && $(pong arp_replies) -ge 1 ]] \
  && ok "epair-memif-pong: $(pong echo_replies) echo replies, $(pong arp_replies) ARP replies, exit 0" \
  || fail "epair-memif-pong exit $pong_status: $(cat "$WORK/pong.json" "$WORK/pong.log")"
expect_pong_error() {
  local message=$1
  shift
  "$EPAIR_MEMIF_PONG" "$@" --inet 10.97.0.3 --seconds 5 >/dev/null 2>"$WORK/pong.err"
  local status=$?
  ((status == 1)) && [[ $(cat "$WORK/pong.err") == "$message" ]] && ok "epair-memif-pong: $message" \
    || fail "epair-memif-pong exit $status: $(cat "$WORK/pong.err"), wanted: $message"
}
expect_pong_error "epair-memif-pong: memif: connect $WORK/none.sock: No such file or directory" --socket "$WORK/none.sock"
expect_pong_error "epair-memif-pong: memif: $SOCK: peer disconnected: incorrect secret" --socket "$SOCK" --secret nope

log "two epairs joined by memif: a ping from one namespace to another"
new_ns NS_C c
C=$(ctl epair create) && D=${C%a}b || fail "create second pair"
ctl "$C" vnet "$NS_C" up inet 10.97.0.2/24 || fail "configure $C"
ctl "$B" attach memif socket "$SOCK" id 9 || fail "server end"
ctl "$D" up attach memif socket "$SOCK" role client id 9 || fail "client end"
wait_for 10 bash -c "[[ \$('$EPAIRCTL' $D) == *'memif link: connected'* ]]" && ok "$B and $D connected" \
  || fail "epair to epair: $(show_field "$D" memif.last_disconnect)"
ip netns exec "$NS_A" ping -c 3 -i 0.2 -W 2 10.97.0.2 >/dev/null && ok "ping across memif" || fail "ping across memif"
expect_error "memif: socket $SOCK is in use" ctl "$D" attach memif socket "$SOCK"
[[ $(show_field "$D" memif.role) == client ]] && ok "a refused attach keeps the old one" || fail "old attachment lost"

log "restart: both come back and connect again"
stop_daemon TERM
start_daemon
wait_for 15 bash -c "[[ \$('$EPAIRCTL' $D) == *'memif link: connected'* ]]" && ok "connected after a restart" \
  || fail "not connected after restart: $(ctl "$D")"
ip netns exec "$NS_A" ping -c 2 -i 0.2 -W 2 10.97.0.2 >/dev/null && ok "ping after restart" || fail "ping after restart"

log "detach: a plain end again"
expect_error "attached to memif; detach it before moving it" ctl "$B" vnet "$NS_C"
ctl "$D" detach || fail "detach $D"
wait_for 5 bash -c "[[ \$('$EPAIRCTL' $B) == *'memif link: not connected'* ]]" && ok "$B sees its peer go" \
  || fail "$B still connected"
ctl "$B" detach || fail "detach $B"
[[ ! -e $SOCK ]] && ok "socket file removed" || fail "socket file left"
[[ $(mf text) == None ]] && ok "detached" || fail "still attached"
ip -n "$NS_A" link show "$A" | grep -q LOWER_UP && ok "$A has carrier again (its peer's TAP is back)" \
  || fail "no carrier on $A after detach"
expect_error "detach: not attached" ctl "$B" detach

log "flow control: testpmd into a memif end, across, out of the other end's memif to testpmd; none lost"
E=$(ctl epair create) && F=${E%a}b || fail "create a third pair"
expect_error "memif: flow-control is 'on' or 'off', not 'yes'" \
  ctl "$E" attach memif socket "$WORK/in.sock" flow-control yes
ctl "$E" up attach memif socket "$WORK/in.sock" flow-control on || fail "attach $E"
ctl "$F" up attach memif socket "$WORK/out.sock" flow-control on || fail "attach $F"
[[ $(show_field "$E" memif.flow_control) == True && $(show_field "$E" memif.text) == *" flow-control on" ]] \
  && ok "shown: $(show_field "$E" memif.text)" || fail "flow-control shown: $(show_field "$E" memif.text)"
SOCK="$WORK/out.sock" start_testpmd frx client rxonly
wait_for 10 bash -c "[[ \$('$EPAIRCTL' $F) == *'memif link: connected'* ]]" || fail "receiver did not connect"
SOCK="$WORK/in.sock" start_testpmd ftx client txonly
wait_for 10 bash -c "[[ \$('$EPAIRCTL' $E) == *'memif link: connected'* ]]" || fail "sender did not connect"
sleep "$SEND_SECONDS"
stop_testpmd ftx
# The receiver empties its ring before it goes: what $F put on it, all at testpmd.
wait_for 5 bash -c "[[ \$('$EPAIRCTL' $E) == *'memif link: not connected'* ]]"
all_across() {
  local passed
  passed=$(show_field "$F" memif.counters.sent)
  [[ $passed == $(show_field "$E" memif.counters.received) ]] && testpmd_has frx RX-packets "$passed"
}
wait_for 10 all_across
stop_testpmd frx
taken=$(show_field "$E" memif.counters.received)
passed=$(show_field "$F" memif.counters.sent)
full=$(show_field "$F" memif.counters.ring_full)
got=$(testpmd_stat frx RX-packets)
((taken > 10000 && full == 0 && passed == taken && got == passed)) \
  && ok "$E took $taken frames from testpmd, $F put $passed on the receiver's ring (none found it full), testpmd got $got" \
  || fail "flow control: took $taken, passed $passed, ring full $full, testpmd got $got"
ctl "$E" | grep -q "reads held back" && ok "$(ctl "$E" | grep -o '[0-9]* reads held back')" \
  || fail "no held-back count: $(ctl "$E" | grep 'memif frames')"
ctl "$E" destroy || fail "destroy $E"


log "zero-copy: testpmd servers on both ends of one epair, frames cross as descriptors, every one counted"
G=$(ctl epair create) && H=${G%a}b || fail "create a fourth pair"
expect_error "memif: zero-copy needs role client" ctl "$G" attach memif socket "$WORK/zin.sock" zero-copy on
expect_error "memif: zero-copy takes one queue pair" \
  ctl "$G" attach memif socket "$WORK/zin.sock" role client queues 2 zero-copy on
expect_error "memif: zero-copy is 'on' or 'off', not 'yes'" \
  ctl "$G" attach memif socket "$WORK/zin.sock" role client zero-copy yes
ctl "$G" up mtu 9000 attach memif socket "$WORK/zin.sock" role client zero-copy on flow-control on || fail "attach $G"
expect_error "memif: zero-copy: $G has ring-size 1024 and buffer-size 2048, and so must this end" \
  ctl "$H" attach memif socket "$WORK/zout.sock" role client zero-copy on ring-size 512
ctl "$H" up mtu 9000 attach memif socket "$WORK/zout.sock" role client zero-copy on flow-control on \
  || fail "attach $H"
[[ $(show_field "$G" memif.text) == *" zero-copy on" && $(show_field "$G" memif.relay_buffers) == 2048 ]] \
  && ok "shown: $(show_field "$G" memif.text), $(show_field "$G" memif.relay_buffers) relay buffers a direction" \
  || fail "zero-copy shown: $(show_field "$G" memif.text), $(show_field "$G" memif.relay_buffers) buffers"
zc() { show_field "$1" "memif.$2"; }
# The counters a zero-copy run reads: G.received is $G's
# memif.counters.received, G.opackets its counters.opackets.
ZERO_COPY_COUNTERS=(G.received G.relayed H.sent H.ring_full H.not_connected
  G.opackets G.obytes G.omcasts H.ipackets H.ibytes H.imcasts)
# read_zero_copy ARRAY: those counters now into the associative ARRAY, one
# epairctl call an end.
read_zero_copy() {
  local -n into=$1
  local side key i
  local -a keys paths values
  for side in G H; do
    keys=() paths=()
    for key in "${ZERO_COPY_COUNTERS[@]}"; do
      [[ $key == "$side".* ]] || continue
      keys+=("$key")
      case ${key#*.} in
        [io]packets | [io]bytes | [io]mcasts) paths+=("counters.${key#*.}") ;;
        *) paths+=("memif.counters.${key#*.}") ;;
      esac
    done
    mapfile -t values < <(show_fields "${!side}" "${paths[@]}")
    for i in "${!keys[@]}"; do into[${keys[$i]}]=${values[$i]}; done
  done
}
# zero_copy_run NAME [TXONLY OPTIONS [RECEIVER LEAVES AFTER]]: testpmd
# servers, the receiver on $H's socket and the sender on $G's, for
# SEND_SECONDS; the deltas of the counters in Z[...] afterwards.
declare -A Z
# zero_copy_across NAME SENT_BEFORE: testpmd NAME's receiver has every
# frame $H has put on its ring since SENT_BEFORE.
zero_copy_across() { testpmd_has "${1}rx" RX-packets "$(($(zc "$H" counters.sent) - $2))"; }
zero_copy_run() {
  local name=$1 options=${2:-} leave=${3:-} key
  local -A before after
  read_zero_copy before
  rm -f "$WORK/zout.sock" "$WORK/zin.sock"
  SOCK="$WORK/zout.sock" start_testpmd "${name}rx" server rxonly
  wait_for 10 bash -c "[[ \$('$EPAIRCTL' $H) == *'memif link: connected'* ]]" || fail "$H did not connect"
  SOCK="$WORK/zin.sock" start_testpmd "${name}tx" server txonly "" "$options"
  wait_for 10 bash -c "[[ \$('$EPAIRCTL' $G) == *'memif link: connected'* ]]" || fail "$G did not connect"
  [[ $(zc "$G" relaying) == True && $(zc "$H" relaying) == True ]] || fail "not relaying: $(ctl "$G" | grep zero-copy)"
  if [[ -n $leave ]]; then
    sleep "$leave"
    stop_testpmd "${name}rx"
  fi
  sleep "$SEND_SECONDS"
  stop_testpmd "${name}tx"
  if [[ -z $leave ]]; then
    # The receiver empties its ring before it goes.
    wait_for 5 bash -c "[[ \$('$EPAIRCTL' $G) == *'memif link: not connected'* ]]"
    wait_for 10 zero_copy_across "$name" "${before[H.sent]}"
    stop_testpmd "${name}rx"
  fi
  wait_for 10 bash -c "[[ \$('$EPAIRCTL' $G) == *'memif link: not connected'* &&
    \$('$EPAIRCTL' $H) == *'memif link: not connected'* ]]" || fail "testpmds did not leave"
  Z[sent]=$(testpmd_sent "${name}tx")
  Z[got]=$(testpmd_stat "${name}rx" RX-packets)
  read_zero_copy after
  for key in "${ZERO_COPY_COUNTERS[@]}"; do Z[$key]=$((after[$key] - before[$key])); done
}
# Every relay buffer back in its pool once both servers are gone.
buffers_back() {
  local g h
  g=$(zc "$G" relay_buffers_free) h=$(zc "$H" relay_buffers_free)
  ((g == 2048 && h == 2048)) && ok "$1: all 2048 relay buffers of each direction free again" \
    || fail "$1: relay buffers free: $G $g, $H $h of 2048"
}

# Sent to a multicast address, which epair counts in omcasts and imcasts
# from the frame's first byte.
zero_copy_run z64 "--eth-peer=0,01:00:5e:00:00:01"
((Z[sent] > 10000 && Z[G.received] == Z[sent] && Z[G.relayed] == Z[sent] && Z[H.sent] == Z[sent] &&
  Z[got] == Z[sent] && Z[H.ring_full] == 0)) \
  && ok "testpmd sent ${Z[sent]} = $G received = crossed uncopied = $H put on the ring = testpmd received" \
  || fail "sent ${Z[sent]}, $G received ${Z[G.received]} (relayed ${Z[G.relayed]}), $H sent ${Z[H.sent]} (ring full ${Z[H.ring_full]}), testpmd got ${Z[got]}"
((Z[G.opackets] == Z[sent] && Z[H.ipackets] == Z[sent] && Z[G.obytes] == 64 * Z[sent] &&
  Z[H.ibytes] == Z[G.obytes] && Z[G.omcasts] == Z[sent] && Z[H.imcasts] == Z[sent])) \
  && ok "counted as the engine counts: ${Z[G.opackets]} opackets/ipackets, ${Z[G.obytes]} bytes, ${Z[G.omcasts]} multicasts" \
  || fail "$G opackets ${Z[G.opackets]} obytes ${Z[G.obytes]} omcasts ${Z[G.omcasts]}; $H ipackets ${Z[H.ipackets]} ibytes ${Z[H.ibytes]} imcasts ${Z[H.imcasts]}"
buffers_back "64-byte frames"

zero_copy_run zjumbo "--txpkts=2000,2000,2000,2000"
((Z[sent] > 1000 && Z[G.relayed] == Z[sent] && Z[got] == Z[sent] && Z[G.obytes] == 8000 * Z[sent] &&
  Z[H.ibytes] == Z[G.obytes] && Z[H.ring_full] == 0)) \
  && ok "chained: ${Z[sent]} frames of 8000 bytes in four buffers crossed uncopied, all at testpmd" \
  || fail "jumbo: sent ${Z[sent]}, relayed ${Z[G.relayed]}, ring full ${Z[H.ring_full]}, testpmd got ${Z[got]}; ${Z[G.obytes]} bytes out, ${Z[H.ibytes]} in"
buffers_back "jumbo frames"

log "zero-copy: a capture on $G sends frames through the engine instead, copied; none lost"
"$EPAIRCTL" capture "$G" -w "$WORK/zc.pcap" 2>"$WORK/zcap.err" &
ZCAP=$!
HELPER_PIDS+=($ZCAP)
wait_for 5 grep -q "^capturing on" "$WORK/zcap.err" || fail "capture did not start: $(cat "$WORK/zcap.err")"
zero_copy_run zcap
kill -INT "$ZCAP"
wait "$ZCAP"
captured=$(tcpdump -r "$WORK/zc.pcap" 2>/dev/null | wc -l)
# The capture may lose frames to a slow reader (epairctl(8), CAPTURE); the
# wire loses none.
((Z[sent] > 10000 && Z[G.relayed] == 0 && Z[G.received] == Z[sent] && Z[got] == Z[sent] && captured > 0)) \
  && ok "with a capture: ${Z[sent]} sent, none relayed, all ${Z[got]} received, $captured captured" \
  || fail "capture: sent ${Z[sent]}, relayed ${Z[G.relayed]}, received ${Z[G.received]}, testpmd got ${Z[got]}, captured $captured"
buffers_back "after the capture"

log "zero-copy: the receiver leaves while frames cross; its buffers come back"
zero_copy_run zleave "" 1
((Z[sent] > 10000 && Z[G.received] == Z[sent] && Z[G.relayed] > 0 && Z[H.not_connected] > 0 &&
  Z[H.sent] + Z[H.not_connected] == Z[sent])) \
  && ok "receiver gone after 1 s: ${Z[G.relayed]} crossed before, ${Z[H.not_connected]} dropped unconnected after" \
  || fail "leave: sent ${Z[sent]}, received ${Z[G.received]}, relayed ${Z[G.relayed]}, $H sent ${Z[H.sent]}, not connected ${Z[H.not_connected]}"
buffers_back "after the receiver left"

log "zero-copy: hostile servers on both sockets; the same buffer on both rings, every broken ring refused"
python3 "$(dirname "$0")/memif_hostile_server.py" "$WORK/zin.sock" "$WORK/zout.sock" "$EPAIRCTL" "$G" "$H" \
  >"$WORK/hostile_server.log" 2>&1
hostile=$?
cat "$WORK/hostile_server.log"
((hostile == 0)) && ok "hostile servers: all refused, the buffers all back" || fail "hostile servers"
ctl "$G" destroy || fail "destroy $G"

finish
