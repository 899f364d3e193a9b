#!/bin/bash
# Two epairds, each in a namespace of its own with its own socket, joined by
# VXLAN over a veth between those namespaces: a namespace behind each end a
# pings the other, as two hosts would.
source "$(dirname "$0")/lib.sh"
new_ns NS_D1 d1
new_ns NS_D2 d2
new_ns NS_L left
new_ns NS_R right
SOCK1="$WORK/d1.sock" SOCK2="$WORK/d2.sock"
PIDS=()

ctl1() { EPAIR_SOCKET=$SOCK1 "$EPAIRCTL" "$@"; }
ctl2() { EPAIR_SOCKET=$SOCK2 "$EPAIRCTL" "$@"; }

stop_daemons() {
  for socket in "$SOCK1" "$SOCK2"; do
    for name in $(EPAIR_SOCKET=$socket "$EPAIRCTL" -l 2>/dev/null); do
      [[ $name == *a ]] && EPAIR_SOCKET=$socket "$EPAIRCTL" "$name" destroy 2>/dev/null
    done
  done
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  PIDS=()
}
trap 'stop_daemons; cleanup' EXIT

start_in() {
  local ns=$1 socket=$2 state=$3
  # shellcheck disable=SC2086 # EPAIRD_ARGS is a list of options
  ip netns exec "$ns" "$EPAIRD" --socket "$socket" --state-dir "$state" --workers 2 ${EPAIRD_ARGS:-} \
    >>"$WORK/epaird.log" 2>&1 &
  PIDS+=($!)
  wait_for 5 env EPAIR_SOCKET="$socket" "$EPAIRCTL" -C || { fail "epaird in $ns did not start"; finish; }
}

log "two hosts: namespaces d1 and d2 joined by a veth, an epaird in each"
ip link add "v1$RUN_ID" netns "$NS_D1" type veth peer name "v2$RUN_ID" netns "$NS_D2" || fail "veth"
ip -n "$NS_D1" addr add 10.97.0.1/24 dev "v1$RUN_ID"
ip -n "$NS_D2" addr add 10.97.0.2/24 dev "v2$RUN_ID"
ip -n "$NS_D1" link set "v1$RUN_ID" up
ip -n "$NS_D2" link set "v2$RUN_ID" up
start_in "$NS_D1" "$SOCK1" "$WORK/state1"
start_in "$NS_D2" "$SOCK2" "$WORK/state2"

log "a pair on each; end b of each is a tunnel end towards the other host"
A1=$(ctl1 epair create) && B1=${A1%a}b || fail "create on d1"
A2=$(ctl2 epair create) && B2=${A2%a}b || fail "create on d2"
ctl1 "$A1" vnet "$NS_L" inet 10.96.0.1/24 mtu 1450 up || fail "configure $A1"
ctl2 "$A2" vnet "$NS_R" inet 10.96.0.2/24 mtu 1450 up || fail "configure $A2"
ctl1 "$B1" up attach vxlan remote 10.97.0.2 local 10.97.0.1 vni 7 || fail "attach on d1"
ctl2 "$B2" up attach vxlan remote 10.97.0.1 local 10.97.0.2 vni 7 || fail "attach on d2"

log "left pings right across both daemons"
ip netns exec "$NS_L" ping -c 3 -i 0.2 -W 2 10.96.0.2 >/dev/null && ok "ping left -> right" || fail "ping"
ip netns exec "$NS_R" ping -c 3 -i 0.2 -W 2 10.96.0.1 >/dev/null && ok "ping right -> left" || fail "ping back"
sent=$(EPAIR_SOCKET=$SOCK1 show_field "$B1" vxlan.counters.sent)
got=$(EPAIR_SOCKET=$SOCK2 show_field "$B2" vxlan.counters.received)
((sent >= 6 && got >= 6)) && ok "d1 sent $sent, d2 received $got" || fail "tunnel counters: sent $sent, received $got"

finish
