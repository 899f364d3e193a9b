#!/bin/bash
# Every error of epairctl: one line on stderr, a non-zero exit status, and
# nothing already running disturbed.
source "$(dirname "$0")/lib.sh"

log "help and the demo without root"
ctl --help | grep -q '^usage: epairctl' && ok "epairctl --help" || fail "epairctl --help"
"$EPAIRD" --help | grep -q '^usage: epaird' && ok "epaird --help" || fail "epaird --help"
if id nobody >/dev/null 2>&1; then
  expect_error "must run as root" setpriv --reuid=nobody --regid=nogroup --clear-groups \
    bash "$(dirname "$0")/../../scripts/demo"
fi

log "no daemon"
expect_error "cannot reach epaird at $EPAIR_SOCKET: No such file or directory" ctl -l
start_daemon

log "socket and readiness"
[[ $(stat -c %a "$EPAIR_SOCKET") == 666 ]] && ok "socket 0666: anyone may read" || fail "socket mode $(stat -c %a "$EPAIR_SOCKET")"
python3 - "$EPAIRD" "$WORK" <<'PY' && ok "sd_notify READY=1 under systemd" || fail "no READY=1"
import os, socket, subprocess, sys
path = os.path.join(sys.argv[2], "notify.sock")
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(path); s.settimeout(10)
env = dict(os.environ, NOTIFY_SOCKET=path)
d = subprocess.Popen([sys.argv[1], "--socket", os.path.join(sys.argv[2], "n.sock"), "--state-dir",
                      os.path.join(sys.argv[2], "nstate")], env=env, stderr=subprocess.DEVNULL)
try:
    assert b"READY=1" in s.recv(4096)
finally:
    d.terminate(); d.wait()
PY

log "cloner and names"
[[ $(ctl -C) == epair ]] && ok "-C lists epair" || fail "-C"
A=$(ctl epair create)
[[ $A =~ ^epair[0-9]+a$ ]] && ok "create printed $A" || fail "create printed '$A'"
PAIR=${A%a}
expect_error "interface $PAIR already exists" ctl "$PAIR" create
expect_error "interface epair32767a does not exist" ctl epair32767a
expect_error "interface epair32767a does not exist" ctl epair32767a up
expect_error "interface epair32767b does not exist" ctl epair32767b destroy
expect_error "Invalid argument" ctl epairx create
expect_error "Invalid argument" ctl epair01 create
expect_error "No space left on device" ctl epair32768 create
expect_error "unknown setting 'sideways'" ctl "$A" sideways
expect_error "'mtu' needs a value" ctl "$A" mtu
expect_error "'create' must follow the cloner name" ctl "$A" up create
expect_error "no interface given" ctl
expect_error "unknown option '-x'" ctl -x

log "settings"
expect_error "$A: SIOCSIFMTU: Invalid argument" ctl "$A" mtu 71
expect_error "$A: SIOCSIFMTU: Invalid argument" ctl "$A" mtu 65536
expect_error "$A: SIOCSIFMTU: Invalid argument" ctl "$A" mtu lots
expect_error "$A: SIOCSIFLLADDR: Invalid argument" ctl "$A" ether 01:00:5e:00:00:01
expect_error "$A: SIOCSIFLLADDR: Invalid argument" ctl "$A" ether not-a-mac
expect_error "invalid address" ctl "$A" inet 300.1.1.1/24
expect_error "invalid address" ctl "$A" inet6 10.0.0.1/24

log "namespaces"
expect_error "namespace ep-$RUN_ID-none does not exist" ctl "$A" vnet "ep-$RUN_ID-none"
expect_error "process 999999999 does not exist" ctl "$A" vnet 999999999
expect_error "invalid namespace name" ctl "$A" vnet ../etc
new_ns NS a
ctl "$A" vnet "$NS" && ok "moved to $NS" || fail "vnet $NS"
expect_error "File exists" ctl "$A" vnet "$NS"
expect_error "does not exist" ctl "${PAIR}b" -vnet "$NS"
ctl "$A" -vnet "$NS" && ok "-vnet brought it back" || fail "-vnet"
[[ $(ctl "$A") == *"vnet: host"* ]] && ok "back in host" || fail "not back"
sleep 60 &
holder=$!
ip netns exec "$NS" sleep 60 &
inside=$!
# ip netns exec enters the namespace after it started: until then the PID
# is in the host's.
wait_for 5 bash -c "[[ \$(stat -Lc %i /proc/$inside/ns/net) == \$(stat -Lc %i /run/netns/$NS) ]]" \
  || fail "process $inside did not enter $NS"
ctl "$A" vnet "$inside" && ok "vnet PID of a process in $NS" || fail "vnet PID"
[[ $(ctl "$A") == *"vnet: $NS"* ]] && ok "PID resolved to $NS" || fail "PID vnet: $(ctl "$A")"
ip -n "$NS" link show "$A" >/dev/null && ok "device is in $NS" || fail "device not in $NS"
ctl "$A" -vnet "$inside" && ok "-vnet PID" || fail "-vnet PID"
kill "$holder" "$inside" 2>/dev/null

log "a name already taken in the target namespace"
ip -n "$NS" tuntap add mode tap name "$A"
expect_error "$A: SIOCSIFVNET: File exists" ctl "$A" vnet "$NS"
[[ $(ctl "$A") == *"vnet: host"* ]] && ok "$A stayed in host" || fail "$A moved: $(ctl "$A")"
ip -n "$NS" link del "$A"
ctl "$A" vnet "$NS" && ctl "$A" -vnet "$NS" && ok "moves once the name is free" || fail "move after clash"

log "-a and -v"
out=$(ctl -a)
[[ $(grep -c '^epair[0-9]*[ab]: flags=' <<<"$out") -ge 2 ]] && ok "-a shows every end" || fail "-a: $out"
[[ $(ctl -v "$A") == *"input:  packets"*"output: packets"* ]] && ok "-v adds counters" || fail "-v"
[[ $(ctl -a -v | grep -c 'output: packets') -ge 2 ]] && ok "-a -v" || fail "-a -v"

log "create with settings; a failing one leaves the pair, as ifconfig does"
out=$(ctl epair create mtu 9000 up 2>&1)
[[ $out =~ ^epair[0-9]+a$ ]] && [[ $(ctl "$out") == *"mtu 9000"* ]] && ok "create mtu 9000 up" || fail "create: $out"
ctl "$out" destroy
out=$(ctl epair create mtu 5 2>&1)
rc=$?
((rc != 0)) && [[ $out == *"SIOCSIFMTU: Invalid argument"* ]] && ok "error reported: ${out//$'\n'/ | }" || fail "$out"
ctl "${out%%$'\n'*}" destroy 2>/dev/null

log "permission"
if id nobody >/dev/null 2>&1; then
  chmod 755 "$WORK"
  expect_error "permission denied" setpriv --reuid=nobody --regid=nogroup --clear-groups "$EPAIRCTL" epair create
  expect_error "permission denied" setpriv --reuid=nobody --regid=nogroup --clear-groups "$EPAIRCTL" "$A" down
  expect_error "epaird: must run as root" setpriv --reuid=nobody --regid=nogroup --clear-groups "$EPAIRD" \
    --socket "$WORK/nobody.sock" --state-dir "$WORK/nobody"
  # A second daemon that lets the group 'users' change things.
  chmod 755 "$WORK"
  "$EPAIRD" --socket "$WORK/group.sock" --state-dir "$WORK/group-state" --group users --readers group \
    >>"$WORK/epaird.log" 2>&1 &
  group_daemon=$!
  wait_for 5 test -S "$WORK/group.sock"
  [[ $(stat -c '%a %G' "$WORK/group.sock") == "660 users" ]] && ok "socket 0660, group users" \
    || fail "socket $(stat -c '%a %G' "$WORK/group.sock")"
  member=(setpriv --reuid=nobody --regid=nogroup --groups="$(getent group users | cut -d: -f3)")
  created=$("${member[@]}" "$EPAIRCTL" -s "$WORK/group.sock" epair create) && ok "a member of users created $created" \
    || fail "member refused"
  "${member[@]}" "$EPAIRCTL" -s "$WORK/group.sock" "$created" destroy && ok "and destroyed it" || fail "member destroy"
  # With --readers group the socket itself keeps others out.
  expect_error "cannot reach epaird at $WORK/group.sock: Permission denied" \
    setpriv --reuid=nobody --regid=nogroup --clear-groups "$EPAIRCTL" -s "$WORK/group.sock" -l
  kill "$group_daemon"
  wait "$group_daemon"
  names=$(setpriv --reuid=nobody --regid=nogroup --clear-groups "$EPAIRCTL" -l) && [[ $names == *"$A"* ]] \
    && ok "a non-root user may read" || fail "non-root read: $names"
else
  fail "no user 'nobody' to test with"
fi

log "JSON output"
ctl --json "$A" | python3 -c 'import json,sys; d=json.load(sys.stdin)["interfaces"][0]; assert d["mtu"]==1500 and "counters" in d' \
  && ok "--json show" || fail "--json show"
ctl --json -C | python3 -c 'import json,sys; assert json.load(sys.stdin)["cloners"]==["epair"]' && ok "--json -C" || fail "--json -C"
out=$(ctl --json epair32767a 2>/dev/null)
python3 -c 'import json,sys; assert json.loads(sys.argv[1])["error"]["code"]=="ENXIO"' "$out" && ok "--json error" || fail "$out"

log "the daemon survives bad requests"
python3 - "$EPAIR_SOCKET" <<'PY' && ok "protocol errors answered" || fail "protocol errors"
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); f = s.makefile("rw")
for line, code in [("not json", "EPROTO"), ("[1]", "EPROTO"), ('{"op":"fly"}', "EPROTO"),
                   ('{"v":2,"op":"list"}', "EPROTO"), ('{"op":"create"}', "EPROTO"),
                   ('{"op":"configure","name":"epair0a","actions":[{"action":"mtu"}]}', "EINVAL")]:
    f.write(line + "\n"); f.flush()
    reply = json.loads(f.readline())
    assert not reply["ok"] and reply["error"]["code"] == code, (line, reply)
PY
[[ $(ctl -l) == *"$A"* ]] && ok "$A still there" || fail "lost $A"
ctl "$A" destroy
expect_error "interface $A does not exist" ctl "$A" destroy
finish
