#!/bin/bash
# FreeBSD's habits, written as its test scripts use them (vnet.subr): an
# end's interface groups and `-g`; an address added again, its prefix
# changed, removed with -alias or delete; the MTU range of the data path;
# an end renamed with `name` or with `ip link set ... name`;
# FreeBSD 15's capabilities in options=, transmit checksum offload switched
# on both ends with txcsum and -txcsum and VLAN tag offload on one with
# vlanhwtag, done so by the Linux devices; all of it kept across a restart.
# Run on either data path (EPAIRD_ARGS).
source "$(dirname "$0")/lib.sh"
start_daemon
epair=$(vnet_mkepair) || fail "vnet_mkepair"
vnet_mkjail one "${epair}a" || fail "vnet_mkjail one"
vnet_mkjail two "${epair}b" || fail "vnet_mkjail two"
ctl "${epair}a" up inet 192.0.2.1/24 || fail "configure ${epair}a"
ctl "${epair}b" up inet 192.0.2.2/24 || fail "configure ${epair}b"
DATAPATH=$(show_field "${epair}a" datapath)
log "on the $DATAPATH data path"

log "interface groups: ifconfig -g, group, -group"
other=$(vnet_mkepair) || fail "second pair"
[[ $(ctl -g epair | tr '\n' ' ') == "${epair}a ${epair}b ${other}a ${other}b " ]] \
  && ok "-g epair: every end, one a line" || fail "-g epair: $(ctl -g epair)"
ctl "${epair}a" group jails || fail "group jails"
ctl "${other}b" group jails || fail "group jails on ${other}b"
[[ $(ctl -g jails | tr '\n' ' ') == "${epair}a ${other}b " ]] && ok "-g jails: its two members" \
  || fail "-g jails: $(ctl -g jails)"
[[ $(ctl "${epair}a") == *$'\tgroups: epair jails\n'* ]] && ok "groups: epair jails" || fail "$(ctl "${epair}a")"
[[ $(ctl --json -g jails) == *'"interfaces"'* ]] && ok "-g --json" || fail "$(ctl --json -g jails)"
[[ -z $(ctl -g nosuch) ]] && ok "-g of a group without members: nothing, as ifconfig" || fail "$(ctl -g nosuch)"
expect_error "SIOCAIFGROUP: File exists" ctl "${epair}a" group jails
expect_error "may not end in a digit" ctl "${epair}a" group jail0
expect_error "-g needs a group name" ctl -g
ctl "${other}b" -group jails || fail "-group"
[[ $(ctl -g jails) == "${epair}a" ]] && ok "-group: left it" || fail "-g jails: $(ctl -g jails)"
expect_error "SIOCDIFGROUP: No such file or directory" ctl "${other}b" -group jails
ctl "$other"a destroy || fail "destroy $other"
[[ $(ctl -g epair | wc -l) == 2 ]] && ok "destroyed: its ends leave the group" || fail "$(ctl -g epair)"

log "addresses: added again, another prefix, -alias and delete"
addresses() { jexec one ip -o -4 addr show dev "${epair}a" | awk '{print $4}' | tr '\n' ' '; }
ctl "${epair}a" inet 192.0.2.1/24 && ok "inet of an address it has: succeeds, as ifconfig" || fail "inet again"
[[ $(addresses) == "192.0.2.1/24 " ]] && ok "kept once" || fail "addresses: $(addresses)"
ctl "${epair}a" inet 192.0.2.1/16 || fail "inet /16"
[[ $(addresses) == "192.0.2.1/16 " ]] && ok "another prefix changes it" || fail "addresses: $(addresses)"
ctl "${epair}a" inet 192.0.2.1/24 inet 192.0.2.11/24 alias || fail "inet alias"
[[ $(addresses) == "192.0.2.1/24 192.0.2.11/24 " ]] && ok "alias adds" || fail "addresses: $(addresses)"
ctl "${epair}a" inet 192.0.2.11 -alias && [[ $(addresses) == "192.0.2.1/24 " ]] && ok "-alias removes" \
  || fail "addresses: $(addresses)"
expect_error "SIOCDIFADDR: Can't assign requested address" ctl "${epair}a" inet 192.0.2.11 delete
expect_error "'-alias' follows the address" ctl "${epair}a" -alias
ctl "${epair}a" inet6 2001:db8::1/64 inet6 2001:db8::1/64 || fail "inet6 twice"
[[ $(jexec one ip -o -6 addr show dev "${epair}a" | grep -c 2001:db8::1/64) == 1 ]] && ok "inet6 again: kept once" \
  || fail "$(jexec one ip -6 addr show dev "${epair}a")"
ctl "${epair}a" inet6 2001:db8::1 delete || fail "inet6 delete"
jexec one ip -6 addr show dev "${epair}a" | grep -q 2001:db8::1 && fail "inet6 delete left it" \
  || ok "inet6 ... delete removes"
jexec one ping -c 1 -W 2 192.0.2.2 >/dev/null && ok "ping after the changes" || fail "no ping"

log "the MTU range of the $DATAPATH data path"
[[ $DATAPATH == tap ]] && most=65521 || most=65535
expect_error "SIOCSIFMTU: Invalid argument (mtu -5 is out of range: 72..$most on the $DATAPATH data path)" \
  ctl "${epair}a" mtu -5
expect_error "(mtu $((most + 1)) is out of range: 72..$most on" ctl "${epair}a" mtu $((most + 1))
expect_error "(mtu 71 is out of range" ctl "${epair}a" mtu 71
expect_error "(mtu 'big' is not a number)" ctl "${epair}a" mtu big
ctl "${epair}a" mtu "$most" && [[ $(jexec one cat "/sys/class/net/${epair}a/mtu") == "$most" ]] \
  && ok "mtu $most, the most, taken by Linux" || fail "mtu $most: $(jexec one cat "/sys/class/net/${epair}a/mtu")"
ctl "${epair}a" mtu 1500 || fail "mtu 1500"

log "capabilities: FreeBSD 15's, checksum offload switched on both ends"
options="options=60001b<RXCSUM,TXCSUM,VLAN_MTU,VLAN_HWTAGGING,RXCSUM_IPV6,TXCSUM_IPV6>"
[[ $(ctl "${epair}a") == *"$options"* && $(ctl "${epair}b") == *"$options"* ]] && ok "$options" \
  || fail "$(ctl "${epair}a" | grep options)"
[[ $(show_field "${epair}b" options) == $((0x60001b)) ]] && ok "--json options: FreeBSD's bits" \
  || fail "options $(show_field "${epair}b" options)"
segmented=$(frames_longer_than 4000 "${JAIL[one]}" "${JAIL[two]}" "${epair}b" 192.0.2.2 5201) \
  || fail "iperf3 with offload"
((segmented > 0)) && ok "with offload, TCP crosses in $segmented frames over 4000 bytes" || fail "no large frame"
ctl "${epair}b" -txcsum || fail "-txcsum"
off="options=600019<RXCSUM,VLAN_MTU,VLAN_HWTAGGING,RXCSUM_IPV6,TXCSUM_IPV6>"
[[ $(ctl "${epair}a") == *"$off"* && $(ctl "${epair}b") == *"$off"* ]] && ok "-txcsum on ${epair}b: both ends $off" \
  || fail "$(ctl "${epair}a" | grep options)"
large=$(frames_longer_than 1514 "${JAIL[one]}" "${JAIL[two]}" "${epair}b" 192.0.2.2 5202) || fail "iperf3 without"
((large == 0)) && ok "without: no frame over 1514 bytes (segmented by ${epair}a's stack)" || fail "$large large frames"
# Each checksum filled in by the sender: tcpdump finds none to complain of.
jexec two timeout 10 tcpdump -c 20 -nn -vv -i "${epair}b" tcp 2>"$WORK/sums.err" >"$WORK/sums.txt" &
dump=$!
HELPER_PIDS+=($dump)
wait_for 5 grep -q "listening on" "$WORK/sums.err"
jexec two iperf3 -s -1 -D -B 192.0.2.2 -p 5203 --pidfile "$WORK/iperf-sums.pid"
wait_for 5 jexec two bash -c "ss -ltn | grep -q ':5203'"
jexec one iperf3 -c 192.0.2.2 -p 5203 -n 1M >/dev/null || fail "iperf3 for checksums"
wait "$dump"
(($(grep -c cksum "$WORK/sums.txt") == 20)) && ! grep -q incorrect "$WORK/sums.txt" \
  && ok "20 TCP segments, every checksum correct" || fail "checksums: $(grep -m3 cksum "$WORK/sums.txt")"
ctl "${epair}a" -rxcsum && [[ $(ctl "${epair}a") == *"$off"* ]] && ok "-rxcsum: RXCSUM stays, as FreeBSD 15's" \
  || fail "$(ctl "${epair}a" | grep options)"
# feature NS IFNAME NAME: what ethtool -k says of one of the device's features.
feature() { jexec "$1" ethtool -k "$2" | awk -v name="$3:" '$1 == name {print $2}'; }
[[ $(feature one "${epair}a" tx-checksumming) == off && $(feature two "${epair}b" tx-checksumming) == off ]] \
  && ok "ethtool -k: tx-checksumming off on both ends' devices" \
  || fail "tx-checksumming: $(feature one "${epair}a" tx-checksumming), $(feature two "${epair}b" tx-checksumming)"
[[ $(feature one "${epair}a" tx-vlan-offload) == on ]] && ok "VLAN_HWTAGGING: tx-vlan-offload on" \
  || fail "tx-vlan-offload: $(feature one "${epair}a" tx-vlan-offload)"
ctl "${epair}a" -vlanhwtag || fail "-vlanhwtag"
[[ $(ctl "${epair}a") != *VLAN_HWTAGGING* && $(ctl "${epair}b") == *VLAN_HWTAGGING* ]] \
  && [[ $(feature one "${epair}a" tx-vlan-offload) == off && $(feature two "${epair}b" tx-vlan-offload) == on ]] \
  && ok "-vlanhwtag: off on ${epair}a and its device only" || fail "$(ctl "${epair}a" | grep options)"
ctl "${epair}a" vlanhwtag && [[ $(feature one "${epair}a" tx-vlan-offload) == on ]] && ok "vlanhwtag: on again" \
  || fail "vlanhwtag: $(feature one "${epair}a" tx-vlan-offload)"

log "rename: ifconfig NAME name NEWNAME, and ip link set ... name followed"
sent=$(counter "${epair}a" opackets)
[[ $(ctl "${epair}b" name jail0) == jail0 ]] && ok "name jail0: prints the new name" || fail "rename"
[[ $(jexec two ip -o link show jail0) == *"jail0"* ]] && ! jexec two ip link show "${epair}b" >/dev/null 2>&1 \
  && ok "the Linux device is jail0 in its namespace" || fail "$(jexec two ip -br link)"
expect_error "interface ${epair}b does not exist" ctl "${epair}b"
[[ $(show_fields jail0 side peer unit | tr '\n' ' ') == "b ${epair}a ${epair#epair} " ]] \
  && ok "--json: side b, peer ${epair}a, its unit" || fail "$(show_fields jail0 side peer unit)"
jexec one ping -c 1 -W 2 192.0.2.2 >/dev/null && ok "ping across the renamed pair" || fail "no ping after rename"
(($(counter "${epair}a" opackets) > sent)) && ok "counters went on" || fail "opackets $sent -> $(counter "${epair}a" opackets)"
[[ $(ctl -g epair | tr '\n' ' ') == "${epair}a jail0 " ]] && ok "-g epair: jail0" || fail "$(ctl -g epair)"
expect_error "interface jail0 already exists" ctl "${epair}a" name jail0
expect_error "invalid interface name 'a/b'" ctl "${epair}a" name a/b
next=$(ctl epair create) || fail "create"
[[ $next != "${epair}a" ]] && ok "epair create does not reuse the renamed pair's unit ($next)" || fail "reused"
ctl "$next" destroy || fail "destroy $next"
jexec two ip link set jail0 down
jexec two ip link set jail0 name www
jexec two ip link set www up
wait_for 5 bash -c "[[ \$('$EPAIRCTL' -l) == '${epair}a www' ]]" && ok "ip link set jail0 name www: followed, not torn down" \
  || fail "$(ctl -l)"
wait_for 5 jexec one ping -c 1 -W 1 192.0.2.2 && ok "ping after ip's rename" || fail "no ping after ip's rename"

log "kept across a restart"
stop_daemon TERM
start_daemon
[[ $(ctl -g jails) == "${epair}a" ]] && ok "group jails kept" || fail "-g jails: $(ctl -g jails)"
[[ $(ctl -l) == "${epair}a www" ]] && ok "the name www kept" || fail "$(ctl -l)"
[[ $(ctl www) == *"$off"* ]] && ok "options kept" || fail "$(ctl www | grep options)"
large=$(frames_longer_than 1514 "${JAIL[one]}" "${JAIL[two]}" www 192.0.2.2 5204) || fail "iperf3 restarted"
((large == 0)) && ok "and the devices still checksum in software" || fail "$large large frames after restart"
ctl "${epair}a" txcsum6 txcsum || fail "txcsum"
[[ $(ctl www) == *"$options"* && $(feature two www tx-checksumming) == on ]] && ok "txcsum: on again on both" \
  || fail "$(ctl www | grep options)"
segmented=$(frames_longer_than 4000 "${JAIL[one]}" "${JAIL[two]}" www 192.0.2.2 5205) \
  || fail "iperf3 offload again"
((segmented > 0)) && ok "offload back: $segmented frames over 4000 bytes" || fail "no large frame"
ctl www destroy && [[ -z $(ctl -l) ]] && ! jexec one ip link show "${epair}a" >/dev/null 2>&1 \
  && ok "www destroy: both ends gone" || fail "after destroy: $(ctl -l)"
finish
