# Shared by the end-to-end tests: a private epaird, namespaces unique to the
# run, and a cleanup that runs however the test ends.
# Needs: EPAIRD and EPAIRCTL (paths of the binaries), root, /dev/net/tun.
# EPAIRD_ARGS: more options for epaird (e.g. --delivery deferred).
set -u

if [[ $(id -u) -ne 0 ]]; then
  echo "SKIP: end-to-end tests need root"
  exit 77
fi
if [[ ! -c /dev/net/tun ]]; then
  echo "SKIP: no /dev/net/tun"
  exit 77
fi
: "${EPAIRD:?path of epaird}" "${EPAIRCTL:?path of epairctl}"

# Each scenario runs in a network namespace of its own, epaird's "host"
# namespace, which dies with the scenario's last process: the devices epaird
# makes there, and the ports it listens on, cannot meet another scenario's,
# so scenarios run side by side and none leaves a device behind. The
# namespaces a scenario names with new_ns are shared with the machine, under
# names unique to the run. /sys is still the machine's: read a device's
# files through `ip netns exec`, which mounts its own.
if [[ -z ${EPAIR_E2E_PRIVATE_NETNS:-} ]]; then
  EPAIR_E2E_PRIVATE_NETNS=1 exec unshare --net -- bash "$0" "$@"
fi
ip link set lo up

# Debian's python3 (scripts/setup installs it, with the modules the
# scenarios import), not a version manager's shim that may stand before it
# on PATH: a shim costs ~0.3 s a call, and the scenarios read every counter
# through python3, hundreds of times. Exported for the `bash -c` of wait_for.
if [[ -x /usr/bin/python3 ]]; then
  python3() { /usr/bin/python3 "$@"; }
  export -f python3
fi

RUN_ID="e2e$$"
WORK=$(mktemp -d "/tmp/epair-${RUN_ID}.XXXXXX")
export EPAIR_SOCKET="$WORK/epaird.sock"
STATE_DIR="$WORK/state"
METRICS="$WORK/metrics.sock"
DAEMON_PID=""
NAMESPACES=()
# Processes the test started in the background, killed by cleanup.
HELPER_PIDS=()
FAILURES=0

log() { echo "--- $*"; }
fail() {
  echo "FAIL: $*"
  FAILURES=$((FAILURES + 1))
}
ok() { echo "ok: $*"; }

# new_ns VAR SUFFIX: a network namespace that cleanup removes, named in VAR.
new_ns() {
  local name="ep-${RUN_ID}-$2"
  ip netns add "$name" || exit 1
  ip -n "$name" link set lo up
  NAMESPACES+=("$name")
  printf -v "$1" '%s' "$name"
}

start_daemon() {
  # shellcheck disable=SC2086 # EPAIRD_ARGS is a list of options
  # No boot configuration but the scenario's: not the machine's /etc/epair/rc.conf.
  "$EPAIRD" --socket "$EPAIR_SOCKET" --state-dir "$STATE_DIR" --config /dev/null --workers 2 ${EPAIRD_ARGS:-} "$@" \
    >>"$WORK/epaird.log" 2>&1 &
  DAEMON_PID=$!
  for _ in $(seq 100); do
    [[ -S $EPAIR_SOCKET ]] && "$EPAIRCTL" -C >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "epaird did not start:"; cat "$WORK/epaird.log"
  exit 1
}

stop_daemon() {
  local signal=${1:-TERM}
  [[ -n $DAEMON_PID ]] || return 0
  kill "-$signal" "$DAEMON_PID" 2>/dev/null
  wait "$DAEMON_PID" 2>/dev/null
  DAEMON_STATUS=$?
  DAEMON_PID=""
}

ctl() { "$EPAIRCTL" "$@"; }

# Waits up to $1 seconds for the command after it to succeed.
wait_for() {
  local seconds=$1
  shift
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS >= deadline)) && return 1
    sleep 0.1
  done
}

# Waits up to 5 seconds for epaird to list no interface.
wait_no_interfaces() { wait_for 5 bash -c "[[ -z \$('$EPAIRCTL' -l) ]]"; }

# A counter of an interface from `epairctl --json`.
counter() { ctl --json "$1" | python3 -c "import json,sys; print(json.load(sys.stdin)['interfaces'][0]['counters']['$2'])"; }
field() { ctl --json "$1" | python3 -c "import json,sys; print(json.load(sys.stdin)['interfaces'][0]['$2'])"; }
# show_fields NAME PATH...: fields of an interface from one `epairctl
# --json`, each by a dotted path (vxlan.counters.sent), one a line; None
# from a null on. show_field NAME PATH: one of them.
show_fields() {
  local name=$1
  shift
  ctl --json "$name" | python3 -c "
import json, sys
interface = json.load(sys.stdin)['interfaces'][0]
for path in sys.argv[1:]:
    value = interface
    for key in path.split('.'):
        value = value[key] if value is not None else None
    print(value)" "$@"
}
show_field() { show_fields "$1" "$2"; }

# metric NAME [LABEL=VALUE]: one sample from the metrics of an epaird
# started with --metrics "unix:$METRICS", 0 when absent.
metric() {
  scrape "unix:$METRICS" | python3 -c '
import sys
name, label = sys.argv[1:3]
for line in sys.stdin.read().splitlines()[1:]:
    if line.startswith(name + "{" if label else name + " ") and (not label or label.replace("=", "=\"") + "\"" in line):
        print(int(float(line.rsplit(" ", 1)[1])))
        break
else:
    print(0)' "$1" "${2:-}"
}

# epaird's CPU time over the next second, in clock ticks (user + system).
daemon_ticks_in_a_second() {
  local before
  before=$(awk '{print $14 + $15}' "/proc/$DAEMON_PID/stat")
  sleep 1
  echo $(($(awk '{print $14 + $15}' "/proc/$DAEMON_PID/stat") - before))
}

# frames_longer_than BYTES NS_FROM NS_TO DEV ADDR PORT: how many frames
# longer than BYTES tcpdump on DEV (in NS_TO) saw while iperf3 sent TCP
# from NS_FROM to ADDR:PORT for a second; a server of its own on PORT. Seen
# where they arrive, frames show what offload did on the way, whichever
# data path counted them; fails when iperf3 does.
frames_longer_than() {
  local bytes=$1 from=$2 to=$3 dev=$4 addr=$5 port=$6 dump status
  ip netns exec "$to" iperf3 -s -1 -D -B "$addr" -p "$port" --logfile "$WORK/iperf-$port.log" \
    --pidfile "$WORK/iperf-$port.pid"
  wait_for 5 ip netns exec "$to" bash -c "ss -ltn | grep -q ':$port'"
  ip netns exec "$to" tcpdump -i "$dev" -w /dev/null "tcp and greater $((bytes + 1))" 2>"$WORK/dump-$port.err" &
  dump=$!
  wait_for 5 grep -q "listening on" "$WORK/dump-$port.err"
  ip netns exec "$from" iperf3 -c "$addr" -p "$port" -t 1 >/dev/null
  status=$?
  kill -INT "$dump"
  wait "$dump"
  kill "$(cat "$WORK/iperf-$port.pid" 2>/dev/null)" 2>/dev/null
  awk '/packets captured/ {print $1}' "$WORK/dump-$port.err"
  return $status
}

# The command must fail with exactly one line on stderr containing $1.
expect_error() {
  local want=$1
  shift
  local err rc
  err=$("$@" 2>&1 >/dev/null)
  rc=$?
  if ((rc == 0)); then
    fail "'$*' succeeded; wanted error '$want'"
  elif [[ $err != *"$want"* ]]; then
    fail "'$*': got '$err', wanted '$want'"
  elif [[ $(grep -c '' <<<"$err") -ne 1 ]]; then
    fail "'$*': error is not one line: '$err'"
  else
    ok "'$*' -> $err"
  fi
}

# Waits until IPv6 duplicate address detection is done in namespace $1.
wait_dad() { wait_for 10 bash -c "! ip -n '$1' -6 addr show tentative | grep -q inet6"; }

cleanup() {
  local names
  for pid in "${HELPER_PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null; done
  names=$([[ -S $EPAIR_SOCKET ]] && "$EPAIRCTL" -l 2>/dev/null)
  for ifname in $names; do
    [[ $ifname == *a ]] && "$EPAIRCTL" "$ifname" destroy 2>/dev/null
  done
  stop_daemon TERM
  # A sanitizer build of epaird reports in its log, some of it at exit; any
  # report fails the test.
  if grep -q -E 'WARNING: ThreadSanitizer|ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:' \
    "$WORK/epaird.log"; then
    echo "FAIL: sanitizer report in epaird's log"
    FAILURES=$((FAILURES + 1))
    trap - EXIT
    cat "$WORK/epaird.log"
    for ns in "${NAMESPACES[@]}"; do ip netns del "$ns" 2>/dev/null; done
    remove_work
    exit 1
  fi
  for ns in "${NAMESPACES[@]}"; do ip netns del "$ns" 2>/dev/null; done
  # Devices a failed test left behind in the host namespace.
  for ifname in $names; do ip link del "$ifname" 2>/dev/null; done
  if ((FAILURES != 0)); then
    echo "=== epaird log"
    cat "$WORK/epaird.log"
  fi
  remove_work
}
trap cleanup EXIT

# The work directory, with the hidden namespace of every epaird the test
# started (each state directory's hidden.netns): its devices go with the
# last mount.
remove_work() {
  awk -v work="$WORK/" 'index($2, work) == 1 {print $2}' /proc/mounts | xargs -r -n 1 umount 2>/dev/null
  rm -rf "$WORK"
}

finish() {
  if ((FAILURES != 0)); then
    echo "$FAILURES check(s) failed"
    exit 1
  fi
  echo "all checks passed"
  exit 0
}

# Two namespaces joined by a new epair: sets PAIR, A, B, NS_A, NS_B and
# addresses 10.99.0.1/24 and 10.99.0.2/24 (fd99::1/64, fd99::2/64).
connect_pair() {
  new_ns NS_A a
  new_ns NS_B b
  A=$(ctl epair create) || { fail "create"; finish; }
  B=${A%a}b
  PAIR=${A%a}
  ctl "$A" vnet "$NS_A" up inet 10.99.0.1/24 inet6 fd99::1/64 || fail "configure $A"
  ctl "$B" vnet "$NS_B" up inet 10.99.0.2/24 inet6 fd99::2/64 || fail "configure $B"
}

# FreeBSD's vnet.subr, in namespaces: vnet_mkepair prints a new pair's
# name without its a/b; vnet_mkjail NAME IFNAME... makes a namespace for
# jail NAME (JAIL[NAME]) and moves the ends into it; jexec NAME CMD... runs
# there. cleanup takes them all away, as vnet_cleanup does.
declare -A JAIL
vnet_mkepair() {
  local a
  a=$(ctl epair create) || return 1
  echo "${a%a}"
}
vnet_mkjail() {
  local name=$1 ns ifname
  shift
  new_ns ns "$name"
  JAIL[$name]=$ns
  for ifname in "$@"; do ctl "$ifname" vnet "$ns" || return 1; done
}
jexec() {
  local name=$1
  shift
  ip netns exec "${JAIL[$name]}" "$@"
}

# scrape [unix:PATH|PORT] [PATH] [METHOD]: prints "STATUS\nBODY".
scrape() {
  python3 - "$1" "${2:-/metrics}" "${3:-GET}" <<'EOF'
import http.client, socket, sys
where, path, method = sys.argv[1:4]
class UnixConnection(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(where[5:])
conn = UnixConnection("localhost") if where.startswith("unix:") else http.client.HTTPConnection("127.0.0.1", int(where))
conn.request(method, path)
r = conn.getresponse()
print(r.status)
print(r.getheader("Content-Type"))
sys.stdout.write(r.read().decode())
EOF
}

# value METRIC LABELS: the value of the sample of $BODY (a scrape's body) with
# those labels, read with prometheus_client; fails when there is none.
value() {
  /usr/bin/python3 -c '
import sys
from prometheus_client.parser import text_string_to_metric_families
name, labels = sys.argv[1], dict(kv.split("=") for kv in sys.argv[2].split(",") if kv)
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
            print(int(s.value)); sys.exit(0)
sys.exit(1)' "$1" "$2" <<<"$BODY"
}
