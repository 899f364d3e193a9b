#!/bin/bash
# Load: 256 pairs (EPAIR_LOAD_PAIRS) between two namespaces carry UDP echo
# traffic all at once for a bounded time (EPAIR_LOAD_SECONDS). Afterwards
# nothing is stuck (every queue empty, every pair answers) and every frame
# is accounted for: what Linux handed each TAP end equals what the end sent
# plus its counted drops, what one end sent the other received, and what an
# end received Linux took, less the counted drops.
source "$(dirname "$0")/lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
PAIRS=${EPAIR_LOAD_PAIRS:-256}
SECONDS_OF_LOAD=${EPAIR_LOAD_SECONDS:-10}
RATE=${EPAIR_LOAD_RATE:-20000}

start_daemon
new_ns NS_L l
new_ns NS_R r
# Only the test's own frames: no IPv6 (router and neighbour solicitations)
# and permanent neighbour entries (no ARP) once the pairs exist.
for ns in "$NS_L" "$NS_R"; do
  ip netns exec "$ns" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done

log "create $PAIRS pairs"
started=$SECONDS
python3 "$HERE/load.py" setup "$EPAIR_SOCKET" "$NS_L" "$NS_R" "$PAIRS" >"$WORK/pairs" || fail "setup"
(($(wc -l <"$WORK/pairs") == PAIRS)) && ok "$PAIRS pairs in $((SECONDS - started)) s" || fail "made $(wc -l <"$WORK/pairs")"
read -r first _ _ <"$WORK/pairs"
if [[ $(show_field "$first" datapath) == kernel ]]; then
  # The kernel path: no thread an end (one reads every hidden TAP), and
  # nothing to do while no frame goes the engine's way.
  threads=$(ls "/proc/$DAEMON_PID/task" | wc -l)
  ((threads <= 6)) && ok "$PAIRS pairs, $threads threads in epaird" || fail "$threads threads for $PAIRS pairs"
  ticks=$(daemon_ticks_in_a_second)
  ((ticks <= 2)) && ok "idle with $PAIRS pairs: $ticks ticks of epaird CPU in 1 s" || fail "idle: $ticks ticks in 1 s"
fi
ctl --json -a | python3 -c '
import json, sys
ether = {e["name"]: e["ether"] for e in json.load(sys.stdin)["interfaces"]}
with open(sys.argv[1]) as pairs, open(sys.argv[2], "w") as left, open(sys.argv[3], "w") as right:
    for line in pairs:
        a, b, i = line.split()
        left.write("neigh replace 10.200.%s.2 lladdr %s dev %s nud permanent\n" % (i, ether[b], a))
        right.write("neigh replace 10.200.%s.1 lladdr %s dev %s nud permanent\n" % (i, ether[a], b))
' "$WORK/pairs" "$WORK/neigh-l" "$WORK/neigh-r" || fail "addresses of the ends"
ip -n "$NS_L" -batch "$WORK/neigh-l" && ip -n "$NS_R" -batch "$WORK/neigh-r" || fail "neighbour entries"

log "UDP echo over all $PAIRS pairs for $SECONDS_OF_LOAD s at $RATE datagrams/s"
ip netns exec "$NS_R" python3 "$HERE/load.py" echo &
echo_pid=$!
wait_for 5 ip netns exec "$NS_R" bash -c "ss -lun | grep -q ':9000 '" || fail "echo server did not start"
ip netns exec "$NS_L" python3 "$HERE/load.py" traffic "$PAIRS" "$SECONDS_OF_LOAD" "$RATE" >"$WORK/traffic.json" \
  || fail "traffic"
kill "$echo_pid"
wait "$echo_pid" 2>/dev/null
python3 - "$WORK/traffic.json" "$PAIRS" <<'PY' || fail "traffic results"
import json, sys
r = json.load(open(sys.argv[1])); pairs = int(sys.argv[2])
sent, echoed, probe = sum(r["sent"]), sum(r["echoed"]), r["probe"]
print("ok: %d datagrams sent, %d echoed (%.2f%%)" % (sent, echoed, 100.0 * echoed / max(sent, 1)))
idle = [i for i in range(pairs) if r["echoed"][i] == 0]
assert not idle, "pairs that carried nothing: %s" % idle[:10]
print("ok: every pair carried traffic (fewest echoes on one pair: %d)" % min(r["echoed"]))
stuck = [i for i in range(pairs) if probe[i] == 0]
assert not stuck, "pairs that no longer answer: %s" % stuck[:10]
print("ok: afterwards every pair answered a probe")
PY

log "nothing left in the queues; every frame accounted for"
wait_for 5 bash -c "[[ \$('$EPAIRCTL' --json -a | python3 -c 'import json,sys; print(sum(e[\"queue\"][\"frames\"] for e in json.load(sys.stdin)[\"interfaces\"]))') == 0 ]]" \
  && ok "every receive queue empty" || fail "frames left in queues"
python3 "$HERE/load.py" check "$EPAIR_SOCKET" "$NS_L" "$NS_R" && ok "counters consistent on all $((PAIRS * 2)) ends" \
  || fail "inconsistent counters"
ctl -C >/dev/null && ok "epaird still answers" || fail "epaird died"

log "destroy all $PAIRS pairs"
started=$SECONDS
while read -r a _ _; do ctl "$a" destroy || fail "destroy $a"; done <"$WORK/pairs"
wait_no_interfaces && ok "all destroyed in $((SECONDS - started)) s" || fail "left: $(ctl -l | wc -w) ends"
finish
