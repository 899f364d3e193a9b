#!/usr/bin/env bash
# epairctl capture against tcpdump and tshark: the files they read agree
# frame for frame with what was sent, filters select what tcpdump selects,
# several captures run at once, COUNT and Ctrl-C end a capture with its
# counters, a stalled reader loses capture frames and never wire frames, and
# every error is one line.
source "$(dirname "$0")/lib.sh"
for tool in tshark tcpdump; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool missing"; exit 77; }
done

start_daemon
connect_pair
ip netns exec "$NS_A" ping -c 1 -W 2 10.99.0.2 >/dev/null || fail "no connectivity"

# capture_bg VAR ARGS...: starts `epairctl capture ARGS` in the background,
# stderr in $WORK/VAR.err; waits until it listens.
capture_bg() {
  local var=$1
  shift
  # Gone before the capture starts: the last one's "capturing on" is not its.
  rm -f "$WORK/$var.err"
  "$EPAIRCTL" capture "$@" 2>"$WORK/$var.err" &
  printf -v "$var" '%s' $!
  wait_for 5 grep -q "^capturing on" "$WORK/$var.err" || fail "capture $* did not start: $(cat "$WORK/$var.err")"
}
# stop_capture PID: Ctrl-C, then waits for it.
stop_capture() {
  kill -INT "$1"
  wait "$1"
}

log "pcapng read by tshark and tcpdump agrees with what was sent"
capture_bg CAP "$A" -w "$WORK/ping.pcapng"
ip netns exec "$NS_A" ping -c 5 -i 0.1 -s 100 10.99.0.2 >/dev/null
stop_capture "$CAP" && ok "Ctrl-C ends the capture, exit 0" || fail "capture exit status"
grep -q "packets captured" "$WORK/CAP.err" && ok "counts printed: $(tr '\n' ' ' <"$WORK/CAP.err")" ||
  fail "no counts: $(cat "$WORK/CAP.err")"
fields=$(tshark -r "$WORK/ping.pcapng" -Y icmp -T fields -e frame.interface_name -e frame.packet_flags_direction \
  -e frame.len -e icmp.type 2>/dev/null)
requests=$(grep -c $'^'"$A"$'\t0x00000002\t142\t8$' <<<"$fields")
replies=$(grep -c $'^'"$A"$'\t0x00000001\t142\t0$' <<<"$fields")
((requests == 5 && replies == 5)) && ok "tshark: 5 requests out, 5 replies in, 142 bytes each" ||
  fail "tshark saw: $fields"
td=$(tcpdump -nn -r "$WORK/ping.pcapng" icmp 2>/dev/null | grep -c "ICMP echo")
((td == 10)) && ok "tcpdump reads the same 10 ICMP frames" || fail "tcpdump read $td ICMP frames"
all=$(tshark -r "$WORK/ping.pcapng" 2>/dev/null | wc -l)
[[ $(grep "packets captured" "$WORK/CAP.err") == "$all packets captured" ]] &&
  ok "the count printed is the frames in the file ($all)" || fail "printed $(cat "$WORK/CAP.err"), file has $all"
capinfos -T -m -c "$WORK/ping.pcapng" 2>/dev/null | grep -q ",$all$" && ok "capinfos agrees" ||
  fail "capinfos: $(capinfos -T -m -c "$WORK/ping.pcapng" 2>&1)"

log "-w - streams to tcpdump and tshark; -c ends it"
ctl capture "$B" -c 4 -w - icmp 2>"$WORK/td.err" | tcpdump -nn -r - >"$WORK/td.out" 2>/dev/null &
pipe=$!
wait_for 5 grep -q "^capturing on" "$WORK/td.err" || fail "capture did not start: $(cat "$WORK/td.err")"
ip netns exec "$NS_A" ping -c 3 -i 0.1 10.99.0.2 >/dev/null
wait_for 5 bash -c "! kill -0 $pipe 2>/dev/null" && ok "-c 4 ended the capture" || fail "-c did not end it"
(($(grep -c "ICMP echo" "$WORK/td.out") == 4)) && ok "tcpdump -r - read 4 frames" || fail "$(cat "$WORK/td.out")"
ctl capture "$A" -c 2 -w - 2>"$WORK/ts.err" | tshark -r - -T fields -e frame.len >"$WORK/ts.out" 2>/dev/null &
pipe=$!
wait_for 5 grep -q "^capturing on" "$WORK/ts.err" || fail "capture did not start: $(cat "$WORK/ts.err")"
ip netns exec "$NS_A" ping -c 2 -i 0.1 10.99.0.2 >/dev/null
wait "$pipe"
(($(wc -l <"$WORK/ts.out") == 2)) && ok "tshark -r - read 2 frames" || fail "tshark -r -: $(cat "$WORK/ts.out")"

log "filters select what tcpdump selects on the same traffic"
# A link without IPv6, so that nothing speaks on it but the test: every
# capture then sees the same frames, whenever it started.
new_ns NS_C c
new_ns NS_D d
for ns in "$NS_C" "$NS_D"; do
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done
C=$(ctl epair create)
D=${C%a}b
ctl "$C" vnet "$NS_C" up inet 10.98.0.1/24 || fail "configure $C"
ctl "$D" vnet "$NS_D" up inet 10.98.0.2/24 || fail "configure $D"
filters=("icmp" "udp" "udp and dst port 5001" "arp" "not icmp" "ether broadcast" "greater 500" "ip[8] == 64")
capture_bg ALL "$C" -w "$WORK/all.pcapng"
for i in "${!filters[@]}"; do
  # shellcheck disable=SC2086 # the filter's words are separate arguments
  capture_bg "F$i" "$C" -w "$WORK/f$i.pcapng" ${filters[$i]}
done
# ARP, ICMP of two sizes, UDP to two ports.
ip netns exec "$NS_C" ping -c 3 -i 0.1 -s 800 10.98.0.2 >/dev/null
ip netns exec "$NS_C" ping -c 2 -i 0.1 10.98.0.2 >/dev/null
for port in 5001 5002 5001; do
  ip netns exec "$NS_C" bash -c "echo hello >/dev/udp/10.98.0.2/$port" 2>/dev/null
done
sleep 0.3
for i in "${!filters[@]}"; do
  pid_var="F$i"
  stop_capture "${!pid_var}"
done
stop_capture "$ALL"
for i in "${!filters[@]}"; do
  # Each capture stamps its own copy: compare without the time.
  ours=$(tcpdump -nn -r "$WORK/f$i.pcapng" 2>/dev/null | sed 's/^[^ ]* //')
  theirs=$(tcpdump -nn -r "$WORK/all.pcapng" "${filters[$i]}" 2>/dev/null | sed 's/^[^ ]* //')
  [[ -n $theirs ]] || fail "filter '${filters[$i]}' matched nothing in the test traffic"
  [[ $ours == "$theirs" ]] && ok "'${filters[$i]}': the same $(wc -l <<<"$ours") frames as tcpdump" ||
    fail "'${filters[$i]}': epairctl kept\n$ours\ntcpdump selects\n$theirs"
done
ctl "$C" destroy

log "a live tcpdump on the end agrees with epairctl"
ip netns exec "$NS_A" tcpdump -Z root --immediate-mode -U -nn -i "$A" -w "$WORK/live.pcap" icmp 2>"$WORK/live.err" &
live=$!
wait_for 5 grep -q "listening on" "$WORK/live.err" || fail "tcpdump did not start"
capture_bg CAP "$A" -w "$WORK/ours.pcapng" icmp
ip netns exec "$NS_A" ping -c 4 -i 0.1 10.99.0.2 >/dev/null
sleep 0.3
stop_capture "$CAP"
kill -INT "$live"
wait "$live"
theirs=$(tcpdump -nn -r "$WORK/live.pcap" 2>/dev/null | sed 's/^[^ ]* //')
ours=$(tcpdump -nn -r "$WORK/ours.pcapng" 2>/dev/null | sed 's/^[^ ]* //')
[[ -n $ours && $ours == "$theirs" ]] && ok "same 8 frames, same contents as tcpdump -i $A" ||
  fail "live tcpdump ($(cat "$WORK/live.err")):\n$theirs\nepairctl:\n$ours"

log "lines without -w"
out=$(ctl capture "$A" -c 2 icmp 2>"$WORK/lines.err" &
  wait_for 5 grep -q "^capturing on" "$WORK/lines.err"
  ip netns exec "$NS_A" ping -c 1 10.99.0.2 >/dev/null
  wait)
[[ $out == *" $A Out "*"ICMP echo request"*$'\n'*" $A In "*"ICMP echo reply"* ]] && ok "tcpdump-style lines" ||
  fail "lines: $out"
json_out=$(ctl --json capture "$A" -c 1 icmp 2>"$WORK/json.err" &
  wait_for 5 grep -q "^capturing on" "$WORK/json.err"
  ip netns exec "$NS_A" ping -c 1 10.99.0.2 >/dev/null
  wait)
python3 -c '
import json, sys
lines = [json.loads(l) for l in sys.stdin.read().splitlines()]
assert lines[0]["direction"] == "Out" and lines[0]["length"] == 98 and "echo request" in lines[0]["summary"]
assert lines[-1]["captured"] == 1 and lines[-1]["dropped_by_capture"] == 0
' <<<"$json_out" && ok "--json: a line per frame, then the counters" || fail "--json: $json_out"

log "a stalled reader loses capture frames, never wire frames"
# Nothing on the link but the flood from here on (no IPv6, permanent
# neighbours: no solicitation, no ARP), so that the counters, read while the
# link is quiet, say exactly what crossed.
for ns in "$NS_A" "$NS_B"; do
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done
ip -n "$NS_A" neigh replace 10.99.0.2 lladdr "$(field "$B" ether)" dev "$A" nud permanent
ip -n "$NS_B" neigh replace 10.99.0.1 lladdr "$(field "$A" ether)" dev "$B" nud permanent
# quiet_counts: "A's opackets B's ipackets" once two reads 0.2 s apart agree.
quiet_counts() {
  local previous="" now
  for _ in $(seq 50); do
    now="$(counter "$A" opackets) $(counter "$B" ipackets)"
    [[ $now == "$previous" ]] && { echo "$now"; return 0; }
    previous=$now
    sleep 0.2
  done
  return 1
}
read -r before_out before_in < <(quiet_counts) || fail "the link never went quiet"
# The reader takes nothing for 4 s: the socket fills, then the capture
# buffer (64 KiB: 16 frames), and the rest is dropped from the capture.
"$EPAIRCTL" capture "$A" -B 64 -w - 2>"$WORK/stall.err" > >(sleep 4; cat >/dev/null) &
stall=$!
wait_for 5 grep -q "^capturing on" "$WORK/stall.err"
loss=$(ip netns exec "$NS_A" ping -f -c 3000 -s 1400 10.99.0.2 | grep -o '[0-9.]*% packet loss')
[[ $loss == "0% packet loss" ]] && ok "flood ping: $loss" || fail "flood ping: $loss"
read -r after_out after_in < <(quiet_counts) || fail "the link never went quiet"
sent=$((after_out - before_out))
got=$((after_in - before_in))
((sent == 3000 && got == sent)) && ok "$sent frames sent, $got received" || fail "sent $sent, received $got"
stop_capture "$stall"
dropped=$(sed -n 's/^\([0-9]*\) packets dropped by capture$/\1/p' "$WORK/stall.err")
((dropped > 0)) && ok "the capture dropped $dropped frames" || fail "no capture drops: $(cat "$WORK/stall.err")"

log "the end destroyed under a capture ends it"
E=$(ctl epair create)
capture_bg CAP "$E"
ctl "$E" destroy
wait_for 5 bash -c "! kill -0 $CAP 2>/dev/null" && ok "capture ended" || fail "capture still running"

log "errors"
expect_error "bad filter: can't parse filter expression: syntax error" ctl capture "$A" tcp port
expect_error "interface epair999a does not exist" ctl capture epair999a
expect_error "capture needs an interface" ctl capture
expect_error "invalid direction 'up'" ctl capture "$A" -i up
expect_error "invalid count '0'" ctl capture "$A" -c 0
expect_error "invalid snaplen '0'" ctl capture "$A" -s 0
expect_error "invalid buffer '1'" ctl capture "$A" -B 1
expect_error "unknown capture option '-x'" ctl capture "$A" -x
expect_error "$WORK/no/such/dir/x.pcapng: No such file or directory" ctl capture "$A" -w "$WORK/no/such/dir/x.pcapng"
if id nobody >/dev/null 2>&1; then
  chmod 755 "$WORK"
  expect_error "permission denied" setpriv --reuid=nobody --regid=nogroup --clear-groups "$EPAIRCTL" capture "$A"
fi

finish
