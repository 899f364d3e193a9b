#!/bin/bash
# The boot configuration, in rc.conf's words, as a FreeBSD host keeps its
# epairs and jails: epaird --config makes the pairs the file names, moved
# into their jails' namespaces, renamed and configured; a restart leaves what exists
# alone; `epairctl -f` applies a file to a running epaird, --dry-run says
# what it would make; a missing namespace or a setting Linux refuses is
# that line's error and leaves no half-made pair; a file that does not read
# changes nothing, and stops an epaird that was to start with it. Run on
# either data path (EPAIRD_ARGS).
source "$(dirname "$0")/lib.sh"
new_ns WEB web
CONF="$WORK/rc.conf"
cat >"$CONF" <<EOF
# as /etc/rc.conf says it on FreeBSD
cloned_interfaces="epair0 epair1"
create_args_epair1="description uplink"
ifconfig_epair0a="inet 10.4.6.1/24"
ifconfig_epair0a_alias0="inet 10.4.6.11/24"
ifconfig_epair0b_name="web0"
ifconfig_web0="vnet $WEB inet 10.4.6.2/24 mtu 9000"
ifconfig_web0_ipv6="inet6 fd00:4:6::2/64"
ifconfig_web0_descr="the web jail's end"
ifconfig_epair1a='-txcsum group uplinks'
EOF
start_daemon --config "$CONF"
log "on the $(show_field epair0a datapath) data path"

log "epaird --config: the pairs made as the file says"
[[ $(ctl -l) == "epair0a web0 epair1a epair1b" ]] && ok "cloned_interfaces: epair0 and epair1, epair0b renamed web0" \
  || fail "$(ctl -l)"
[[ $(show_fields web0 vnet mtu description flags_text | tr '\n' ' ') == "$WEB 9000 the web jail's end 8863<UP,"* ]] \
  && ok "ifconfig_web0: in $WEB, mtu 9000, its description, UP" || fail "$(ctl web0)"
ip -n "$WEB" -6 addr show dev web0 | grep -q fd00:4:6::2/64 && ok "ifconfig_web0_ipv6" || fail "no inet6"
[[ $(ip -o -4 addr show dev epair0a | awk '{print $4}' | tr '\n' ' ') == "10.4.6.1/24 10.4.6.11/24 " ]] \
  && ok "epair0a: its address and alias" || fail "$(ip addr show dev epair0a)"
wait_for 5 ping -c 1 -W 1 10.4.6.2 && ok "ping into the web namespace" || fail "no ping"
[[ $(ctl -g uplinks) == epair1a && $(ctl epair1a) == *"options=600019<"* && $(ctl epair1a) == *"description: uplink"* ]] \
  && ok "epair1a: create_args, -txcsum and its group" || fail "$(ctl epair1a)"
[[ $(show_field epair1b flags_text) != *UP* ]] && ok "epair1b, which the file does not name, stays down" \
  || fail "$(ctl epair1b)"

log "a restart leaves what exists alone"
ctl epair0a mtu 1400 || fail "mtu 1400"
stop_daemon TERM
start_daemon --config "$CONF"
[[ $(ctl -l) == "epair0a web0 epair1a epair1b" && $(show_field epair0a mtu) == 1400 ]] \
  && ok "the same four ends; epair0a keeps the MTU set since" || fail "$(ctl -l); mtu $(show_field epair0a mtu)"

log "epairctl -f on a running epaird, --dry-run"
cat >"$WORK/more.conf" <<EOF
cloned_interfaces="epair0 epair2 epair3"
ifconfig_epair2a="inet 10.4.7.1/24"
EOF
out=$(ctl -f "$WORK/more.conf" --dry-run) && [[ $out == $'epair0: exists\nepair2: would create\n  epair2a inet 10.4.7.1/24 up\nepair3: would create' ]] \
  && ok "--dry-run says what it would make" || fail "dry run: $out"
[[ $(ctl -l) == "epair0a web0 epair1a epair1b" ]] && ok "and makes nothing" || fail "$(ctl -l)"
out=$(ctl -f "$WORK/more.conf") && [[ $out == $'epair0: exists\nepair2: created\nepair3: created' ]] \
  && ok "-f: epair2 and epair3 made, epair0 left alone" || fail "-f: $out"
[[ $(show_field epair2a flags_text) == *"<UP,"* ]] && ip -o addr show dev epair2a | grep -q 10.4.7.1/24 \
  && ok "epair2a configured and UP" || fail "$(ctl epair2a)"
[[ $(ctl --json -f "$WORK/more.conf" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pairs"][1]["state"])') \
  == exists ]] && ok "--json: each pair's state" || fail "--json -f"

log "a namespace that is not there: that line's error, the rest made, nothing half-made"
cat >"$WORK/missing.conf" <<EOF
cloned_interfaces="epair4 epair5"
ifconfig_epair4a="inet 10.4.8.1/24"
ifconfig_epair4b="vnet nosuch-$RUN_ID inet 10.4.8.2/24"
ifconfig_epair5a="inet 10.4.9.1/24"
EOF
ctl -f "$WORK/missing.conf" >"$WORK/out" 2>"$WORK/err" && fail "-f with a missing namespace succeeded"
[[ $(cat "$WORK/err") == "epairctl: $WORK/missing.conf:3: ifconfig_epair4b: no network namespace 'nosuch-$RUN_ID' (ip netns add nosuch-$RUN_ID)" ]] \
  && ok "one error, naming file and line" || fail "stderr: $(cat "$WORK/err")"
[[ $(ctl -l) == *epair5a* && $(ctl -l) != *epair4* ]] && ok "epair5 made, no part of epair4" || fail "$(ctl -l)"

log "a setting Linux refuses: the pair goes again"
printf 'cloned_interfaces="epair6"\nifconfig_epair6a="inet 10.4.10.1/24 mtu 70000"\n' >"$WORK/refused.conf"
ctl -f "$WORK/refused.conf" 2>"$WORK/err" && fail "-f with mtu 70000 succeeded"
grep -q "refused.conf:2: ifconfig_epair6a: epair6a: SIOCSIFMTU: Invalid argument (mtu 70000" "$WORK/err" \
  && ok "the line and Linux's word" || fail "stderr: $(cat "$WORK/err")"
[[ $(ctl -l) != *epair6* ]] && ok "no epair6 left" || fail "$(ctl -l)"

log "a file that does not read changes nothing"
before=$(ctl -l)
printf 'cloned_interfaces="epair7"\nifconfig_epair7a="inet 10.4.11.1/24 fly"\nifconfig_em0="DHCP"\n' \
  >"$WORK/bad.conf"
ctl -f "$WORK/bad.conf" 2>"$WORK/err" && fail "-f with bad lines succeeded"
[[ $(wc -l <"$WORK/err") == 2 ]] && grep -q "bad.conf:2: ifconfig_epair7a: unknown setting 'fly'" "$WORK/err" \
  && grep -q "bad.conf:3: ifconfig_em0: not an end of an epair" "$WORK/err" && ok "two bad lines, two errors" \
  || fail "stderr: $(cat "$WORK/err")"
[[ $(ctl -l) == "$before" ]] && ok "nothing made" || fail "$(ctl -l)"
expect_error "cannot read $WORK/none.conf: No such file or directory" ctl -f "$WORK/none.conf"
expect_error "--dry-run goes with -f FILE" ctl --dry-run

log "epaird --config with a file that does not read does not start"
stop_daemon TERM
"$EPAIRD" --socket "$EPAIR_SOCKET" --state-dir "$STATE_DIR" --config "$WORK/bad.conf" 2>"$WORK/err" \
  && fail "epaird started with a bad file"
[[ $(wc -l <"$WORK/err") == 2 && $(head -1 "$WORK/err") == "epaird: $WORK/bad.conf:2: ifconfig_epair7a: unknown setting 'fly'" ]] \
  && ok "its errors, one a line, and exit status 1" || fail "stderr: $(cat "$WORK/err")"
"$EPAIRD" --socket "$EPAIR_SOCKET" --state-dir "$STATE_DIR" --config "$WORK/none.conf" 2>"$WORK/err" \
  && fail "epaird started with no such file"
grep -q "cannot read $WORK/none.conf" "$WORK/err" && ok "--config of a file that is not there: cannot read" \
  || fail "stderr: $(cat "$WORK/err")"
start_daemon --config "$CONF"
[[ $(ctl -l) == "$before" ]] && ok "the pairs were kept meanwhile and re-adopted" || fail "$(ctl -l)"
finish
