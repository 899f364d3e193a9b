#!/usr/bin/env bash
# epaird's Prometheus metrics, read over loopback HTTP and a Unix socket and
# checked by real parsers (prometheus_client, promtool), and epairctl stats.
source "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3
$PY -c "import prometheus_client" 2>/dev/null || { echo "SKIP: python3-prometheus-client missing"; exit 77; }

# A port nothing listens on now, on loopback.
PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
start_daemon --metrics "127.0.0.1:$PORT"
connect_pair

log "metrics over loopback HTTP, parsed by prometheus_client and promtool"
ip netns exec "$NS_A" ping -c 10 -i 0.05 10.99.0.2 >/dev/null || fail "ping"
out=$(scrape "$PORT")
[[ $(sed -n 1p <<<"$out") == 200 ]] && ok "GET /metrics: 200" || fail "GET /metrics: $(sed -n 1p <<<"$out")"
[[ $(sed -n 2p <<<"$out") == "text/plain; version=0.0.4; charset=utf-8" ]] && ok "Prometheus text format" ||
  fail "content type $(sed -n 2p <<<"$out")"
BODY=$(tail -n +3 <<<"$out")
families=$($PY -c '
import sys
from prometheus_client.parser import text_string_to_metric_families
print(len(list(text_string_to_metric_families(sys.stdin.read()))))' <<<"$BODY") &&
  ok "prometheus_client parses $families families" || fail "prometheus_client refused the metrics"
if command -v promtool >/dev/null; then
  lint=$(promtool check metrics <<<"$BODY" 2>&1) && ok "promtool check metrics: clean" || fail "promtool: $lint"
fi
(($(value epair_pairs "") == 1)) && ok "epair_pairs 1" || fail "epair_pairs $(value epair_pairs "")"
(($(value epair_workers "") == 2)) && ok "epair_workers 2" || fail "epair_workers"
(($(value epair_pool_frames "") > 0)) && ok "pool frames" || fail "no pool frames"
# The kernel may send a frame of its own (NDP, MLD) between two reads.
sent=$(value epair_transmit_packets_total "interface=$A,vnet=$NS_A")
later=$(counter "$A" opackets)
((sent >= 10 && sent <= later && later - sent <= 5)) && ok "$A transmitted $sent, as epairctl says ($later)" ||
  fail "transmit_packets $sent against $later"
bytes=$(value epair_receive_bytes_total "interface=$B,vnet=$NS_B")
later=$(counter "$B" ibytes)
((bytes >= 980 && bytes <= later)) && ok "$B received $bytes bytes, as epairctl says ($later)" ||
  fail "receive bytes $bytes against $later"
(($(value epair_up "interface=$A") == 1 && $(value epair_carrier "interface=$A") == 1)) && ok "up, carrier" ||
  fail "up/carrier"
for cause in transmit_error queue_full no_receiver receive_error; do
  value epair_dropped_packets_total "interface=$A,cause=$cause" >/dev/null || fail "no drops of cause $cause"
done
ok "drops by cause: transmit_error queue_full no_receiver receive_error"

log "drops and captures show up"
# Frames too big for the receiving end's MTU are refused on input.
ctl "$B" mtu 1280
ip netns exec "$NS_A" ping -c 2 -i 0.05 -W 0.2 -M do -s 1400 10.99.0.2 >/dev/null
ctl "$B" mtu 1500
"$EPAIRCTL" capture "$A" -B 64 -w - 2>"$WORK/stall.err" > >(sleep 3; cat >/dev/null) &
stall=$!
wait_for 5 grep -q "^capturing on" "$WORK/stall.err" || fail "capture did not start"
ip netns exec "$NS_A" ping -f -c 2000 10.99.0.2 >/dev/null
BODY=$(scrape "$PORT" | tail -n +3)
(($(value epair_dropped_packets_total "interface=$B,cause=receive_error") >= 2)) &&
  ok "oversize frames counted as receive_error on $B" || fail "receive_error"
(($(value epair_captures "interface=$A") == 1)) && ok "epair_captures 1 on $A" || fail "epair_captures"
(($(value epair_capture_dropped_packets_total "interface=$A") > 0)) && ok "capture drops counted" ||
  fail "capture drops $(value epair_capture_dropped_packets_total "interface=$A")"
kill -INT "$stall"
wait "$stall"
# epaird reaps ended captures every half second.
capture_reaped() {
  BODY=$(scrape "$PORT" | tail -n +3)
  (($(value epair_captures "interface=$A") == 0))
}
wait_for 5 capture_reaped && ok "the ended capture is gone" || fail "capture still counted"
BODY=$(scrape "$PORT" | tail -n +3)
(($(value epair_capture_dropped_packets_total "interface=$A") > 0)) && ok "its drops stay counted" ||
  fail "capture drops went back"

log "an impairment's counters"
ctl "$A" impair loss 100% || fail "impair loss 100%"
ip netns exec "$NS_A" ping -c 3 -i 0.05 -W 0.2 10.99.0.2 >/dev/null
BODY=$(scrape "$PORT" | tail -n +3)
(($(value epair_impaired_packets_total "interface=$A,action=lost") >= 3)) && ok "lost frames counted on $A" ||
  fail "impaired lost $(value epair_impaired_packets_total "interface=$A,action=lost")"
(($(value epair_impaired_held_packets "interface=$A") == 0)) && ok "nothing held" || fail "held frames"
value epair_impaired_packets_total "interface=$B" >/dev/null && fail "$B has no impairment, yet a sample"
ctl "$A" impair clear || fail "impair clear"
BODY=$(scrape "$PORT" | tail -n +3)
value epair_impaired_packets_total "interface=$A" >/dev/null && fail "samples after clear" ||
  ok "no samples once cleared"

log "other requests"
[[ $(scrape "$PORT" /other | sed -n 1p) == 404 ]] && ok "404 for /other" || fail "/other"
[[ $(scrape "$PORT" /metrics POST | sed -n 1p) == 405 ]] && ok "405 for POST" || fail "POST"

log "metrics on a Unix socket"
stop_daemon
start_daemon --metrics "unix:$WORK/metrics.sock"
[[ $(scrape "unix:$WORK/metrics.sock" | sed -n 1p) == 200 ]] && ok "GET /metrics over unix:" || fail "unix socket"

log "epairctl stats"
ip netns exec "$NS_A" ping -i 0.01 -c 300 10.99.0.2 >/dev/null &
pinger=$!
out=$(ctl stats -w 0.5 -c 2)
[[ $(grep -c "^$A " <<<"$out") == 2 && $(grep -c "^$B " <<<"$out") == 2 && $out == *packets/s* ]] &&
  ok "two reports for both ends" || fail "stats:
$out"
rate=$(ctl --json stats -w 0.5 -c 1 "$A" | $PY -c '
import json, sys
lines = sys.stdin.read().splitlines()
assert len(lines) == 1
row = json.loads(lines[0])["interfaces"][0]
assert row["name"] == sys.argv[1]
print(int(row["out_pps"]))' "$A") && ((rate > 20)) && ok "--json: $A sends $rate packets/s" || fail "--json rate '$rate'"
wait "$pinger"

log "errors"
expect_error "invalid interval '0'" ctl stats -w 0
expect_error "invalid count 'x'" ctl stats -c x
expect_error "unknown stats option '-x'" ctl stats -x
expect_error "interface epair99a does not exist" ctl stats epair99a
stop_daemon
expect_error "only loopback addresses are served" "$EPAIRD" --socket "$WORK/x.sock" --state-dir "$WORK/x" \
  --metrics 192.0.2.1:9474
expect_error "invalid --metrics 'nonsense'" "$EPAIRD" --socket "$WORK/x.sock" --state-dir "$WORK/x" \
  --metrics nonsense
start_daemon

finish
