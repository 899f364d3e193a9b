#!/bin/bash
# 1,000 pairs (EPAIR_CHURN_CYCLES; 400 in the CI tier) created, moved into a namespace,
# configured and destroyed one after another: epaird's memory, descriptors
# and threads come back to where they were after a warm-up, and no device
# or map entry of the kernel data path is left. The ASan build of
# epaird runs LeakSanitizer at exit, which fails the test on a leak; there
# resident memory is not compared (ASan's quarantine holds freed memory).
source "$(dirname "$0")/lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
CYCLES=${EPAIR_CHURN_CYCLES:-1000}
WARMUP=100

# The TAP devices in the host namespace now, to tell whether the test leaves any.
host_taps() { ip -o link show | grep -oE '^[0-9]+: epair[0-9]+[ab]' | cut -d' ' -f2 | sort; }
host_taps >"$WORK/taps-before"
start_daemon --metrics "unix:$METRICS"
new_ns NS n
if [[ -e $STATE_DIR/hidden.netns ]]; then
  pair=$(ctl epair create) || fail "create"
  (($(metric epair_kernel_map_entries map=ends) == 2 && $(metric epair_kernel_map_entries map=from_engine) == 2)) \
    && ok "the maps count a pair's two ends" || fail "map entries of one pair: $(metric epair_kernel_map_entries map=ends)"
  ctl "$pair" destroy
fi
log "$CYCLES pairs created and destroyed"
started=$SECONDS
python3 "$HERE/load.py" churn "$EPAIR_SOCKET" "$NS" "$DAEMON_PID" "$CYCLES" "$WARMUP" >"$WORK/churn.json" \
  && ok "$CYCLES cycles in $((SECONDS - started)) s" || fail "churn"
python3 - "$WORK/churn.json" "${EPAIR_SANITIZER:-}" <<'PY' || fail "resources not back to baseline"
import json, sys
r = json.load(open(sys.argv[1]))
sanitizer = sys.argv[2]
base, end = r["baseline"], r["end"]
print("ok: after warm-up: %(rss_kib)d KiB resident, %(fds)d descriptors, %(threads)d threads" % base)
print("ok: at the end:    %(rss_kib)d KiB resident, %(fds)d descriptors, %(threads)d threads" % end)
assert end["fds"] == base["fds"], "descriptors leaked"
assert end["threads"] == base["threads"], "threads leaked"
if sanitizer == "address":
    # ASan's quarantine keeps freed memory resident on purpose; there
    # LeakSanitizer judges, when epaird exits.
    print("ok: memory left to LeakSanitizer (ASan quarantine: %d KiB more resident)"
          % (end["rss_kib"] - base["rss_kib"]))
else:
    # Allocator caches settle within a few hundred KiB; a leak of one pair's
    # state per cycle (two ends, a TAP, a reader's stack) would be megabytes.
    assert end["rss_kib"] - base["rss_kib"] < 2048, "resident memory grew %d KiB" % (end["rss_kib"] - base["rss_kib"])
PY
wait_no_interfaces && ok "no interface left" || fail "left: $(ctl -l)"
left=$(host_taps | comm -13 "$WORK/taps-before" -)
[[ -z $left ]] && ok "no TAP device left" || fail "TAP devices left: $left"
if [[ -e $STATE_DIR/hidden.netns ]]; then
  # The kernel data path: every end's hidden veth and TAP, with the filters
  # that hold the programs, and its entries in the programs' maps.
  hidden=$(nsenter --net="$STATE_DIR/hidden.netns" ip -o link show | grep -v ': lo:')
  [[ -z $hidden ]] && ok "no hidden device left" || fail "hidden devices left: $hidden"
  ends=$(metric epair_kernel_map_entries map=ends) from_engine=$(metric epair_kernel_map_entries map=from_engine)
  ((ends == 0 && from_engine == 0)) && ok "no map entry left" \
    || fail "map entries left: $ends ends, $from_engine from the engine"
fi
finish
