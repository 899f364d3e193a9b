#!/bin/bash
# Faults under traffic: epaird killed with -9 mid-transfer and restarted, a
# TAP device deleted and a namespace removed while frames flow (other pairs
# carry on), the state directory full or read-only (changes refused, old
# state kept), and the frame pool exhausted (drops counted, then recovery).
source "$(dirname "$0")/lib.sh"

# The state lives on a small tmpfs of its own, to fill and make read-only.
mkdir -p "$STATE_DIR"
mount -t tmpfs -o size=512k,mode=0700 "epair-$RUN_ID" "$STATE_DIR" || { echo "SKIP: cannot mount tmpfs"; exit 77; }
trap 'umount -l "$STATE_DIR" 2>/dev/null; cleanup' EXIT

start_daemon --metrics "unix:$METRICS"
connect_pair

# True when epaird answers and does not list the interface.
not_listed() {
  local names
  names=$(ctl -l) || return 1
  [[ " $names " != *" $1 "* ]]
}

iperf_server() {
  ip netns exec "$1" iperf3 -s -1 -D -B "$2" --logfile "$WORK/iperf-s-$1.log" --pidfile "$WORK/iperf-s-$1.pid"
  wait_for 5 ip netns exec "$1" bash -c "ss -ltn | grep -q ':5201'"
}
# stop_iperf_server NS: this scenario's server in NS, not another's: the
# machine's processes are one set, whatever the namespace.
stop_iperf_server() { kill "$(cat "$WORK/iperf-s-$1.pid" 2>/dev/null)" 2>/dev/null; }

log "kill -9 in the middle of a TCP transfer, then restart"
iperf_server "$NS_B" 10.99.0.2
ip netns exec "$NS_A" iperf3 -c 10.99.0.2 -t 6 -J >"$WORK/iperf-kill.json" 2>&1 &
client=$!
sleep 1.5
stop_daemon KILL
sleep 0.5
start_daemon --metrics "unix:$METRICS"
if wait "$client"; then
  received=$(python3 -c "import json; print(int(json.load(open('$WORK/iperf-kill.json'))['end']['sum_received']['bytes']))")
  ok "the transfer survived the restart ($received bytes)"
else
  fail "iperf3 failed across the restart: $(tail -5 "$WORK/iperf-kill.json")"
fi
ip netns exec "$NS_A" ping -c 3 -i 0.1 -W 1 10.99.0.2 >/dev/null && ok "ping after restart" || fail "no ping after restart"

# A second pair, C-D, carries pings through every fault that follows.
new_ns NS_C c
new_ns NS_D d
C=$(ctl epair create)
D=${C%a}b
ctl "$C" vnet "$NS_C" up inet 10.98.0.1/24 && ctl "$D" vnet "$NS_D" up inet 10.98.0.2/24 || fail "second pair"
ip netns exec "$NS_C" ping -c 1 -W 2 10.98.0.2 >/dev/null || fail "second pair does not answer"
watch_other_pair() { ip netns exec "$NS_C" ping -c "$1" -i 0.05 -W 1 10.98.0.2 >"$WORK/other.log" 2>&1 & watcher=$!; }
other_pair_unhurt() {
  if wait "$watcher"; then ok "the other pair lost nothing ($(grep -o '[0-9]* received' "$WORK/other.log"))"
  else fail "the other pair was hurt: $(tail -2 "$WORK/other.log")"; fi
}

log "a TAP device deleted under traffic"
iperf_server "$NS_B" 10.99.0.2
ip netns exec "$NS_A" iperf3 -c 10.99.0.2 -t 30 -P 2 >"$WORK/iperf-del.log" 2>&1 &
client=$!
watch_other_pair 40
sleep 1
ip -n "$NS_B" link del "$B"
wait_for 5 bash -c "! ip -n '$NS_A' link show '$A'" && ok "the peer device went with it" || fail "$A left behind"
wait_for 5 not_listed "$A" && ok "pair torn down" || fail "still listed: $(ctl -l)"
kill "$client" 2>/dev/null
wait "$client" 2>/dev/null
stop_iperf_server "$NS_B"
other_pair_unhurt
ctl -C >/dev/null && ok "epaird still answers" || fail "epaird died"

log "a namespace removed while an end in it carries traffic"
new_ns NS_E e
new_ns NS_F f
E=$(ctl epair create)
F=${E%a}b
ctl "$E" vnet "$NS_E" up inet 10.97.0.1/24 && ctl "$F" vnet "$NS_F" up inet 10.97.0.2/24 || fail "third pair"
# The flood keeps NS_F's namespace alive after its name is removed.
ip netns exec "$NS_F" ping -f -W 1 10.97.0.1 >/dev/null 2>&1 &
flood=$!
watch_other_pair 40
sleep 0.5
ip netns del "$NS_F"
wait_for 5 not_listed "$E" && ok "pair torn down" || fail "still listed: $(ctl -l)"
wait_for 5 bash -c "! ip -n '$NS_E' link show '$E'" && ok "the end in $NS_E went too" || fail "$E left behind"
grep -q "namespace $NS_F was removed" "$WORK/epaird.log" && ok "reported in the log" || fail "not reported"
kill "$flood" 2>/dev/null
wait "$flood" 2>/dev/null
other_pair_unhurt

log "state directory full"
cp "$STATE_DIR/state.json" "$WORK/state-before.json"
links_before=$(ip -o link show | grep -c epair)
dd if=/dev/zero of="$STATE_DIR/filler" bs=4k 2>/dev/null
expect_error "cannot save state in $STATE_DIR: No space left on device (nothing was changed)" ctl epair create
expect_error "No space left on device" ctl "$C" mtu 9000
expect_error "No space left on device" ctl "$C" destroy
expect_error "No space left on device" ctl "$C" description full
cmp -s "$STATE_DIR/state.json" "$WORK/state-before.json" && ok "state file unchanged" || fail "state file changed"
[[ $(ctl -l | wc -w) -eq 2 ]] && ok "still one pair" || fail "pairs: $(ctl -l)"
(($(ip -o link show | grep -c epair) == links_before)) && ok "no device made" || fail "a device was made"
[[ $(ip -n "$NS_C" -o link show "$C") == *"mtu 1500"* && $(ctl "$C") != *"description"* ]] \
  && ok "$C kept its MTU and description" || fail "$C changed: $(ctl "$C")"
ip netns exec "$NS_C" ping -c 2 -i 0.1 -W 1 10.98.0.2 >/dev/null && ok "traffic still flows" || fail "traffic stopped"
rm "$STATE_DIR/filler"
G=$(ctl epair create) && ok "with space again: created $G" || fail "create after freeing space"
python3 -c "import json,sys; names=[e['name'] for p in json.load(open(sys.argv[1]))['pairs'] for e in p['ends']]; assert sys.argv[2] in names" \
  "$STATE_DIR/state.json" "$G" && ok "and saved it" || fail "$G not in the state file"
ctl "$G" destroy

log "state directory read-only"
cp "$STATE_DIR/state.json" "$WORK/state-before.json"
# epaird holds its lock file open for writing, so the tmpfs itself cannot
# go read-only: a read-only bind mount over the directory does it instead.
mount --bind "$STATE_DIR" "$STATE_DIR" && mount -o remount,bind,ro "$STATE_DIR" || fail "read-only bind mount"
expect_error "cannot save state in $STATE_DIR: Read-only file system (nothing was changed)" ctl epair create
expect_error "Read-only file system" ctl "$C" down
[[ $(ctl "$C") == *"<UP,"* ]] && ok "$C still UP" || fail "$C went down"
ctl -a >/dev/null && ok "reads still answered" || fail "reads refused"
cmp -s "$STATE_DIR/state.json" "$WORK/state-before.json" && ok "state file unchanged" || fail "state file changed"
umount "$STATE_DIR"
ctl "$C" mtu 4000 && [[ $(ip -n "$NS_C" -o link show "$C") == *"mtu 4000"* ]] && ok "writable again: mtu 4000" \
  || fail "mtu after remount"
ctl "$C" mtu 1500

log "out of descriptors"
# A limit just above what epaird holds now: a few more pairs, then no more.
limit=$(prlimit --pid "$DAEMON_PID" --nofile --output SOFT,HARD --noheadings | awk '{print $1 ":" $2}')
prlimit --pid "$DAEMON_PID" --nofile=$(($(ls "/proc/$DAEMON_PID/fd" | wc -l) + 12))
made=()
for _ in $(seq 10); do
  name=$(ctl epair create 2>"$WORK/create.err") || break
  made+=("$name")
done
grep -q "Too many open files" "$WORK/create.err" && ok "create refused after ${#made[@]}: $(cat "$WORK/create.err")"   || fail "no clear error when out of descriptors: $(cat "$WORK/create.err")"
destroyed=0
for name in "${made[@]}"; do ctl "$name" destroy && destroyed=$((destroyed + 1)) || fail "destroy $name out of descriptors"; done
((destroyed > 0 && destroyed == ${#made[@]})) && ok "destroy works out of descriptors ($destroyed pairs)" \
  || fail "destroyed $destroyed of ${#made[@]}"
name=$(ctl epair create) && ok "descriptors free again: created $name" && ctl "$name" destroy || fail "create after destroy"
ip netns exec "$NS_C" ping -c 2 -i 0.1 -W 1 10.98.0.2 >/dev/null && ok "traffic still flows" || fail "traffic stopped"
prlimit --pid "$DAEMON_PID" --nofile="$limit"

log "frame pool exhausted"
stop_daemon TERM
start_daemon --metrics "unix:$METRICS" --frames 64 --delivery deferred --workers 1
# On the kernel path only what goes the engine's way takes frames from
# the pool: an impairment that changes nothing sends it there.
if [[ $(show_field "$C" datapath) == kernel ]]; then
  ctl "$C" impair limit 1000 && ctl "$D" impair limit 1000 || fail "impair limit 1000"
fi
iperf_server "$NS_D" 10.98.0.2
ip netns exec "$NS_C" iperf3 -c 10.98.0.2 -u -b 0 -l 60000 -P 4 -t 3 >"$WORK/iperf-pool.log" 2>&1 &
client=$!
ip netns exec "$NS_D" ping -f -s 1400 -c 20000 -W 1 10.98.0.1 >/dev/null 2>&1 &
flood=$!
wait "$client"
wait "$flood"
failures=$(metric epair_pool_alloc_failures_total)
drops=$(counter "$C" oqdrops)
((failures > 0)) && ok "the pool ran dry $failures times" || fail "the pool never ran out"
((drops > 0)) && ok "counted as oqdrops on $C ($drops)" || fail "no drops counted on $C"
kill -0 "$DAEMON_PID" 2>/dev/null && ok "epaird survived" || fail "epaird died"
for _ in $(seq 50); do
  free=$(metric epair_pool_free_frames)
  ((free == 64)) && break
  sleep 0.1
done
((free == 64)) && ok "every frame back in the pool" || fail "$free of 64 frames free"
ip netns exec "$NS_C" ping -c 5 -i 0.1 -W 1 10.98.0.2 >/dev/null && ok "traffic recovers" || fail "no traffic after"
stop_iperf_server "$NS_D"
finish
