#!/bin/bash
# Carrier follows the peer, changes made with `ip` reach the daemon, VLANs on
# both ends, and a bridge with one end.
source "$(dirname "$0")/lib.sh"
start_daemon
connect_pair

log "down on one end: NO-CARRIER on the other"
ctl "$B" down
wait_for 3 bash -c "ip -n '$NS_A' link show '$A' | grep -q NO-CARRIER" && ok "$A shows NO-CARRIER" || fail "no NO-CARRIER"
[[ $(ctl "$A") == *"status: no carrier"* ]] && ok "epairctl: status: no carrier" || fail "status: $(ctl "$A")"
ip netns exec "$NS_A" ping -c 1 -W 1 10.99.0.2 >/dev/null && fail "ping crossed a down end" || ok "no traffic"
ctl "$B" up
wait_for 3 bash -c "ip -n '$NS_A' link show '$A' | grep -q LOWER_UP" && ok "carrier back" || fail "carrier not back"
ip netns exec "$NS_A" ping -c 1 -W 2 10.99.0.2 >/dev/null && ok "traffic again" || fail "no traffic after up"

log "ip link set ... is seen by the daemon"
ip -n "$NS_B" link set "$B" down
wait_for 3 bash -c "'$EPAIRCTL' '$B' | grep -q 'flags=8862<'" && ok "DOWN seen" || fail "DOWN not seen: $(ctl "$B")"
wait_for 3 bash -c "ip -n '$NS_A' link show '$A' | grep -q NO-CARRIER" && ok "peer lost carrier" || fail "peer carrier"
ip -n "$NS_B" link set "$B" up mtu 4000 address 02:00:00:00:99:0b alias "set by ip"
wait_for 3 bash -c "'$EPAIRCTL' '$B' | grep -q 'mtu 4000'" && ok "mtu seen" || fail "mtu not seen"
wait_for 3 bash -c "'$EPAIRCTL' '$B' | grep -q 'ether 02:00:00:00:99:0b'" && ok "address seen" || fail "ether not seen"
wait_for 3 bash -c "'$EPAIRCTL' '$B' | grep -q 'description: set by ip'" && ok "alias seen" || fail "alias: $(ctl "$B")"
ip -n "$NS_B" addr add 10.98.0.2/24 dev "$B"
wait_for 3 bash -c "grep -q 10.98.0.2/24 '$STATE_DIR/state.json'" && ok "address saved" || fail "address not saved"
ctl "$B" description "from epairctl"
[[ $(ip -n "$NS_B" link show "$B") == *"alias from epairctl"* ]] && ok "description is the link alias" || fail "alias"
ctl "$B" mtu 1500

log "VLAN 42 across the pair"
if ip -n "$NS_A" link add link "$A" name "$A.42" type vlan id 42 2>/dev/null; then
  ip -n "$NS_B" link add link "$B" name "$B.42" type vlan id 42
  ip -n "$NS_A" addr add 10.42.0.1/24 dev "$A.42"
  ip -n "$NS_B" addr add 10.42.0.2/24 dev "$B.42"
  ip -n "$NS_A" link set "$A.42" up
  ip -n "$NS_B" link set "$B.42" up
  ip netns exec "$NS_A" ping -c 2 -i 0.2 -W 2 10.42.0.2 >/dev/null && ok "ping over VLAN 42" || fail "VLAN ping"
  ip netns exec "$NS_A" ping -c 1 -M do -s 1472 -W 2 10.42.0.2 >/dev/null && ok "full-size frame in VLAN 42" \
    || fail "1500-byte packet in VLAN 42"
  ip -n "$NS_A" link del "$A.42"
  ip -n "$NS_B" link del "$B.42"
else
  # This kernel has no 802.1Q devices: tagged frames are written on a packet
  # socket in one namespace and captured with tcpdump in the other.
  echo "note: no 'type vlan' in this kernel; sending tagged frames on a packet socket"
  ip netns exec "$NS_B" tcpdump -U -nei "$B" -c 3 -w "$WORK/vlan.pcap" 'vlan 42' 2>"$WORK/tcpdump.err" &
  capture=$!
  wait_for 5 grep -q listening "$WORK/tcpdump.err"
  ip netns exec "$NS_A" python3 - "$A" <<'PY'
import socket, struct, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
src = bytes.fromhex(open(f"/sys/class/net/{sys.argv[1]}/address").read().strip().replace(":", ""))
for payload in (46, 100, 1500):  # 1500: MTU-sized payload in an 1518-byte frame (VLAN_MTU)
    s.send(b"\xff" * 6 + src + struct.pack("!HHH", 0x8100, 42, 0x88B5) + bytes(payload))
PY
  wait_for 5 bash -c "! kill -0 $capture 2>/dev/null"
  kill "$capture" 2>/dev/null
  frames=$(tcpdump -enr "$WORK/vlan.pcap" 2>/dev/null)
  (($(grep -c 'vlan 42' <<<"$frames") == 3)) && ok "3 frames tagged 42 crossed" || fail "VLAN frames: $frames"
  grep -q 'length 1518' <<<"$frames" && ok "1518-byte tagged frame crossed (VLAN_MTU)" || fail "no 1518: $frames"
fi

log "a bridge with one end"
ip -n "$NS_A" addr flush dev "$A"
ip -n "$NS_A" link add br0 type bridge
ip -n "$NS_A" link set br0 up
ip -n "$NS_A" link set "$A" master br0
ip -n "$NS_A" addr add 10.99.0.1/24 dev br0
wait_for 5 ip netns exec "$NS_A" ping -c 1 -W 1 10.99.0.2 && ok "ping through the bridge" || fail "bridge ping"
ip netns exec "$NS_B" ping -c 2 -i 0.2 -W 2 10.99.0.1 >/dev/null && ok "ping to the bridge" || fail "bridge reverse"
finish
