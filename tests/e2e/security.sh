#!/bin/bash
# An unprivileged user (nobody, in no group of epaird's) reads what ifconfig
# shows anyone and nothing more: no change, no capture, no state file. Bad
# requests of every kind are refused with an error while epaird keeps
# serving; names with path or control characters never reach Linux.
source "$(dirname "$0")/lib.sh"
id nobody >/dev/null 2>&1 || { echo "SKIP: no user 'nobody'"; exit 77; }
chmod 755 "$WORK"
NOBODY=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
PY=/usr/bin/python3  # nobody cannot reach a python3 under /root
start_daemon
connect_pair
ctl "$A" mtu 4000 description "left side"

log "what nobody may not do"
for change in "epair create" "$A destroy" "$A down" "$A mtu 9000" "$A description x" "$A ether 02:00:00:00:00:99" \
  "$A inet 10.99.9.1/24" "$A -vnet $NS_A" "$B vnet $NS_A"; do
  # shellcheck disable=SC2086 # each change is a list of words
  expect_error "permission denied" "${NOBODY[@]}" "$EPAIRCTL" $change
done
expect_error "permission denied" "${NOBODY[@]}" "$EPAIRCTL" capture "$A" -c 1 -w /dev/null
out=$(ctl "$A")
[[ $out == *"<UP,"* && $out == *"mtu 4000"* && $out == *"description: left side"* && $out == *"vnet: $NS_A"* ]] \
  && ok "$A unchanged" || fail "$A changed: $out"
[[ $(ctl -l) == "$A $B" ]] && ok "no pair made or lost" || fail "pairs: $(ctl -l)"
"${NOBODY[@]}" cat "$STATE_DIR/state.json" >/dev/null 2>&1 && fail "nobody read the state file" \
  || ok "state file unreadable to nobody"
"${NOBODY[@]}" ls "$STATE_DIR" >/dev/null 2>&1 && fail "nobody listed the state directory" \
  || ok "state directory closed to nobody"
"${NOBODY[@]}" "$EPAIRCTL" -v "$A" | grep -q "output: packets" && ok "nobody may read what ifconfig shows" \
  || fail "nobody cannot read"

log "bad requests, as nobody and as root, answered with an error; epaird keeps serving"
for who in nobody root; do
  runner=()
  [[ $who == nobody ]] && runner=("${NOBODY[@]}")
  "${runner[@]}" $PY - "$EPAIR_SOCKET" "$A" "$who" <<'PY' && ok "$who: every bad request refused" || fail "$who: bad requests"
import json, socket, sys
path, a, who = sys.argv[1:4]
s = socket.socket(socket.AF_UNIX); s.connect(path); f = s.makefile("rwb")
def ask(line):
    f.write(line if isinstance(line, bytes) else line.encode()); f.write(b"\n"); f.flush()
    return json.loads(f.readline())
cases = [
    ("not json", "EPROTO"), ("{\"op\":", "EPROTO"), ("[]", "EPROTO"), ("null", "EPROTO"),
    (b"\xff\xfe{}", "EPROTO"),
    ('{"v":2,"op":"list"}', "EPROTO"), ('{"v":0,"op":"list"}', "EPROTO"), ('{"v":"1","op":"list"}', "EPROTO"),
    ('{"op":"list","admin":true}', "EPROTO"), ('{"op":"show","name":"%s","x":1}' % a, "EPROTO"),
    ('{"op":"shutdown"}', "EPROTO"),
    ('{"op":"show","name":"%s"}' % ("x" * 100000), "ENAMETOOLONG"),
    ('{"op":"show","name":"../../etc/passwd"}', "EINVAL"), ('{"op":"show","name":"/dev/net/tun"}', "EINVAL"),
    ('{"op":"show","name":"a\\u0000b"}', "EINVAL"), ('{"op":"show","name":"epair0a\\n"}', "EINVAL"),
    ('{"op":"capture","interfaces":["../x"]}', "EINVAL"),
]
changes = [
    ('{"op":"destroy","name":"../../etc"}', "EINVAL"),
    ('{"op":"configure","name":"%s","actions":[{"action":"description","value":"%s"}]}' % (a, "d" * 5000), "ENAMETOOLONG"),
    ('{"op":"configure","name":"%s","actions":[{"action":"description","value":"a\\u001b[2Jb"}]}' % a, "EINVAL"),
    ('{"op":"configure","name":"%s","actions":[{"action":"vnet","value":"../../proc/1/ns/net"}]}' % a,
     "EINVAL" if who == "root" else "EACCES"),
    ('{"op":"configure","name":"%s","actions":[{"action":"up"}]}' % a, "EACCES" if who == "nobody" else None),
]
for line, code in cases + changes:
    reply = ask(line)
    if code is None:
        assert reply["ok"], (line, reply)
        continue
    assert not reply["ok"] and reply["error"]["code"] == code, (line[:80], reply)
    assert "\n" not in reply["error"]["message"], reply
# A line over 1 MiB ends its connection, and no other.
s2 = socket.socket(socket.AF_UNIX); s2.connect(path)
try:
    s2.sendall(b"x" * (2 << 20))
except OSError:
    pass
s2.settimeout(5)
try:
    assert s2.recv(1) == b""
except ConnectionResetError:
    pass
assert ask('{"op":"list"}')["ok"]
PY
  [[ $(ctl -l) == "$A $B" ]] && ok "epaird still serves, pairs intact" || fail "after bad requests: $(ctl -l)"
done

log "connections: one user cannot hold them all"
"${NOBODY[@]}" $PY - "$EPAIR_SOCKET" <<'PY' &
import socket, sys, time
held = []
for _ in range(200):
    s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); held.append(s)
time.sleep(3)
PY
hog=$!
wait_for 3 grep -q "uid 65534 holds 64 connections: refusing more" "$WORK/epaird.log" && ok "nobody held at 64, logged" \
  || fail "no connection limit"
ctl -l >/dev/null && ok "root is served while nobody opens 200 connections" || fail "root starved"
wait "$hog"

log "names with path and control characters"
expect_error "invalid interface name '../../etc/passwd'" ctl ../../etc/passwd destroy
expect_error "invalid interface name 'a/b'" ctl a/b create
expect_error "invalid interface name 'epair0a\\x0a'" ctl $'epair0a\n' up
expect_error "invalid namespace name '..'" ctl "$A" vnet ..
expect_error "value of description has a control character" ctl "$A" description $'two\nlines'
expect_error "value of vnet has a control character" ctl "$A" vnet $'ns\x01'
[[ $(ctl "$A") == *"description: left side"* ]] && ok "description kept" || fail "description changed"
finish
