#!/bin/bash
# A restarted daemon loses nothing, counters neither; devices and namespaces
# removed behind its back are noticed and their pairs torn down, attached
# ends too.
source "$(dirname "$0")/lib.sh"
start_daemon
connect_pair
ctl "$A" description "left side" mtu 4000
ctl "$B" mtu 4000
ip -n "$NS_A" route add 10.97.0.0/24 via 10.99.0.2

log "state file"
[[ $(stat -c %a "$STATE_DIR") == 700 && $(stat -c %a "$STATE_DIR/state.json") == 600 ]] && ok "state is private" \
  || fail "modes $(stat -c %a "$STATE_DIR") $(stat -c %a "$STATE_DIR/state.json")"
expect_error "another epaird uses $STATE_DIR" "$EPAIRD" --socket "$WORK/other.sock" --state-dir "$STATE_DIR"
expect_error "another epaird is listening on $EPAIR_SOCKET" "$EPAIRD" --socket "$EPAIR_SOCKET" --state-dir "$WORK/s2"
mkdir -p "$WORK/s3/counters"
expect_error "$WORK/s3/counters: open: Is a directory" "$EPAIRD" --socket "$WORK/s3.sock" --state-dir "$WORK/s3" \
  --config /dev/null

# On both data paths the engine counts where it outlives epaird: in the
# counter file, or in the kernel program's map.
for signal in KILL TERM; do
  log "kill -$signal after 200 pings: the counters go on from where they were"
  ip netns exec "$NS_B" ping -c 200 -i 0.002 -q 10.99.0.1 >/dev/null || fail "ping before kill -$signal"
  read -r a_out a_in < <(show_fields "$A" counters.opackets counters.ipackets | paste -sd' ')
  read -r b_out b_in < <(show_fields "$B" counters.opackets counters.ipackets | paste -sd' ')
  stop_daemon "$signal"
  start_daemon
  read -r a_out2 a_in2 < <(show_fields "$A" counters.opackets counters.ipackets | paste -sd' ')
  read -r b_out2 b_in2 < <(show_fields "$B" counters.opackets counters.ipackets | paste -sd' ')
  ((a_out >= 200 && a_out2 >= a_out && a_in2 >= a_in && b_out2 >= b_out && b_in2 >= b_in)) \
    && ok "$A sent $a_out before, $a_out2 after; $B $b_out, $b_out2" \
    || fail "counters went back: $A out $a_out -> $a_out2, in $a_in -> $a_in2; $B out $b_out -> $b_out2, in $b_in -> $b_in2"
done
[[ $(stat -c %a "$STATE_DIR/counters") == 600 ]] && ok "the counter file is private" \
  || fail "counters: $(stat -c %a "$STATE_DIR/counters")"

for signal in KILL TERM; do
  log "kill -$signal and restart"
  ip netns exec "$NS_B" ping -i 0.05 -W 1 10.99.0.1 >"$WORK/ping.log" 2>&1 &
  pinger=$!
  sleep 0.3
  stop_daemon "$signal"
  if [[ $signal == TERM ]]; then
    # Every thread of epaird blocks it, so the signalfd gets it: a clean exit.
    ((DAEMON_STATUS == 0)) && ok "SIGTERM: clean exit" || fail "SIGTERM: exit status $DAEMON_STATUS"
  fi
  ip -n "$NS_A" link show "$A" >/dev/null && ok "$A survives the daemon" || fail "$A gone with the daemon"
  start_daemon
  wait_for 5 ip netns exec "$NS_A" ping -c 1 -W 1 10.99.0.2 && ok "traffic resumes" || fail "no traffic after restart"
  kill "$pinger"
  wait "$pinger" 2>/dev/null
  out=$(ctl "$A")
  [[ $out == *"inet 10.99.0.1 netmask 0xffffff00"* ]] && ok "address intact" || fail "address lost: $out"
  [[ $out == *"mtu 4000"* && $out == *"description: left side"* && $out == *"vnet: $NS_A"* ]] \
    && ok "mtu, description and vnet kept" || fail "state lost: $out"
  [[ $(ctl "$A") == *"flags=8863<UP,"* ]] && ok "still UP" || fail "not UP"
  ip -n "$NS_A" route show 10.97.0.0/24 | grep -q via && ok "route intact" || fail "route lost"
done

log "a pair created after the restarts repeats no address"
E=$(ctl epair create)
macs=$(for i in "$A" "$B" "$E" "${E%a}b"; do field "$i" ether; done | sort -u | wc -l)
((macs == 4)) && ok "4 distinct addresses" || fail "addresses repeat: $(for i in "$A" "$B" "$E"; do field "$i" ether; done)"
ctl "$E" destroy

log "a device deleted behind the daemon's back"
ip -n "$NS_B" link del "$B"
wait_for 5 bash -c "! ip -n '$NS_A' link show '$A'" && ok "the other end went with it" || fail "$A leaked"
wait_no_interfaces && ok "pair torn down" || fail "still listed: $(ctl -l)"
grep -q "device" "$WORK/epaird.log" && ok "reported in the log" || fail "not reported"

log "a namespace removed behind the daemon's back"
C=$(ctl epair create)
new_ns NS_C c
ctl "$C" vnet "$NS_C" up
ip netns del "$NS_C"
wait_for 5 bash -c "! ip link show '${C%a}b'" && ok "the host end went too" || fail "${C%a}b leaked"
wait_no_interfaces && ok "pair torn down" || fail "still listed: $(ctl -l)"
grep -q "namespace $NS_C was removed" "$WORK/epaird.log" && ok "reported in the log" || fail "not reported"

log "a pair whose namespace vanished while the daemon was down"
D=$(ctl epair create)
new_ns NS_D d
ctl "$D" vnet "$NS_D"
stop_daemon KILL
ip netns del "$NS_D"
start_daemon
wait_no_interfaces && ok "not re-adopted" || fail "listed: $(ctl -l)"
ip link show "${D%a}b" >/dev/null 2>&1 && fail "${D%a}b leaked" || ok "its host end was deleted"
grep -q "cannot re-adopt ${D%a}" "$WORK/epaird.log" && ok "reported" || fail "not reported"

log "a pair whose attached end is re-adopted, and whose other end vanished while the daemon was down"
F=$(ctl epair create) && G=${F%a}b
ctl "$F" attach memif socket "$WORK/restart-memif.sock" || fail "attach $F"
stop_daemon KILL
ip link del "$G"
start_daemon
wait_no_interfaces && ok "not re-adopted" || fail "listed: $(ctl -l)"
ip link show "$F" >/dev/null 2>&1 && fail "$F leaked" || ok "the attached end's parked TAP was deleted"
grep -q "cannot re-adopt ${F%a}" "$WORK/epaird.log" && ok "reported" || fail "not reported"

# The TAP path's engine counts in state-dir/counters, room taken a pair at a
# time. A pair the disk has no room for counts in memory: it works, and
# only its counters start from zero after a restart.
if [[ ${EPAIRD_ARGS:-} == *"--datapath tap"* ]]; then
  log "a counter file with no room for a pair"
  stop_daemon TERM
  # One 4 KiB page: the counters of units 0 to 10, none further.
  mkdir -p "$WORK/tiny" "$WORK/small"
  mount -t tmpfs -o size=4k tmpfs "$WORK/tiny" || fail "mount a 4 KiB tmpfs"
  ln -s "$WORK/tiny/counters" "$WORK/small/counters"
  STATE_DIR=$WORK/small
  start_daemon
  roomy=$(ctl epair create) || fail "create a pair with room"
  [[ $(ctl epair20 create) == epair20a ]] && ok "epair20 created without room" || fail "epair20 refused"
  grep -q "counters of epair20: No space left on device; the engine counts epair20 in memory" "$WORK/epaird.log" \
    && ok "logged" || fail "no log line: $(tail -3 "$WORK/epaird.log")"
  new_ns NS_E e
  new_ns NS_F f
  ctl "$roomy" vnet "$NS_E" up inet 10.96.0.1/24 && ctl "${roomy%a}b" vnet "$NS_F" up inet 10.96.0.2/24 \
    && ctl epair20a vnet "$NS_E" up inet 10.95.0.1/24 && ctl epair20b vnet "$NS_F" up inet 10.95.0.2/24 \
    || fail "configure the pairs"
  for address in 10.96.0.2 10.95.0.2; do
    ip netns exec "$NS_E" ping -c 50 -i 0.002 -q "$address" >/dev/null || fail "ping $address"
  done
  roomy_out=$(counter "$roomy" opackets)
  memory_out=$(counter epair20a opackets)
  ((roomy_out >= 50 && memory_out >= 50)) && ok "both count: $roomy_out and $memory_out" \
    || fail "counters $roomy_out, $memory_out"
  stop_daemon KILL
  start_daemon
  ip netns exec "$NS_E" ping -c 5 -i 0.002 -q 10.95.0.2 >/dev/null && ok "epair20 re-adopted and working" \
    || fail "epair20 after the restart"
  roomy_out2=$(counter "$roomy" opackets)
  memory_out2=$(counter epair20a opackets)
  ((roomy_out2 >= roomy_out)) && ok "$roomy's counters went on: $roomy_out, then $roomy_out2" \
    || fail "$roomy's counters went back: $roomy_out -> $roomy_out2"
  ((memory_out2 >= 5 && memory_out2 < memory_out)) && ok "epair20's started again: $memory_out, then $memory_out2" \
    || fail "epair20's: $memory_out -> $memory_out2"
fi
finish
