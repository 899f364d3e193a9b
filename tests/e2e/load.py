#!/usr/bin/env python3
"""Helpers of tests/e2e/load.sh: many pairs made over the control socket,
UDP echo traffic across all of them at once, and the counters checked.

  load.py setup SOCKET NS_L NS_R PAIRS      pairs with ends in NS_L and NS_R
  load.py echo                              (in NS_R) echo UDP port 9000
  load.py traffic PAIRS SECONDS RATE        (in NS_L) RATE datagrams/s in all
  load.py check SOCKET NS_L NS_R            counters of epair against Linux's
  load.py churn SOCKET NS PID CYCLES WARMUP  create, configure and destroy a
                                            pair CYCLES times; epaird's (PID)
                                            memory, descriptors and threads
                                            after WARMUP cycles and at the end

Pair i has 10.200.i.1/24 in NS_L and 10.200.i.2/24 in NS_R.
"""
import json
import os
import select
import socket
import subprocess
import sys
import time

PORT = 9000


def request(conn, **fields):
    conn.sendall((json.dumps(dict(v=1, **fields)) + "\n").encode())
    line = conn.makefile().readline()
    reply = json.loads(line)
    if not reply["ok"]:
        raise SystemExit("load.py: %s: %s" % (fields, reply["error"]["message"]))
    return reply["result"]


def connect(path):
    conn = socket.socket(socket.AF_UNIX)
    conn.connect(path)
    return conn


def setup(path, ns_l, ns_r, pairs):
    started = time.monotonic()
    for i in range(pairs):
        conn = connect(path)
        actions = [{"action": "vnet", "value": ns_l}, {"action": "inet", "value": "10.200.%d.1/24" % i},
                   {"action": "up"}]
        a = request(conn, op="create", name="epair", actions=actions)["name"]
        conn.close()
        conn = connect(path)
        b = a[:-1] + "b"
        request(conn, op="configure", name=b, actions=[{"action": "vnet", "value": ns_r},
                                                      {"action": "inet", "value": "10.200.%d.2/24" % i},
                                                      {"action": "up"}])
        conn.close()
        print("%s %s %d" % (a, b, i))
        if (i + 1) % 64 == 0:
            print("load.py: %d pairs in %.1f s" % (i + 1, time.monotonic() - started), file=sys.stderr)


def echo():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind(("0.0.0.0", PORT))
    while True:
        data, peer = s.recvfrom(2048)
        try:
            s.sendto(data, peer)
        except OSError:
            pass


def traffic(pairs, seconds, rate):
    """Sends to every pair in turn at RATE in all; prints JSON: sent and echoed per pair."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.setblocking(False)
    sent = [0] * pairs
    echoed = [0] * pairs
    payload = bytes(64)

    def receive(timeout):
        while select.select([s], [], [], timeout)[0]:
            try:
                _, (address, _) = s.recvfrom(2048)
            except BlockingIOError:
                break
            echoed[int(address.split(".")[2])] += 1
            timeout = 0

    start = time.monotonic()
    count = 0
    while True:
        elapsed = time.monotonic() - start
        if elapsed >= seconds:
            break
        due = int(elapsed * rate)
        while count < due:
            i = count % pairs
            try:
                s.sendto(payload, ("10.200.%d.2" % i, PORT))
                sent[i] += 1
            except (BlockingIOError, OSError):
                pass
            count += 1
        receive(0.001)
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        receive(0.1)
    # Then every pair must answer: a probe every half second to each pair
    # not yet heard from, for up to 10 s. UDP may lose one; a stuck queue
    # loses them all.
    before = list(echoed)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        silent = [i for i in range(pairs) if echoed[i] == before[i]]
        if not silent:
            break
        for i in silent:
            s.sendto(payload, ("10.200.%d.2" % i, PORT))
        receive(0.5)
    probe = [e - b for e, b in zip(echoed, before)]
    json.dump({"sent": sent, "echoed": [e - p for e, p in zip(echoed, probe)], "probe": probe}, sys.stdout)


def linux_stats(ns):
    out = subprocess.run(["ip", "-n", ns, "-s", "-j", "link", "show"], check=True, capture_output=True, text=True)
    return {link["ifname"]: link["stats64"] for link in json.loads(out.stdout)}


def check(path, ns_l, ns_r):
    """Every frame accounted for, per end X with peer Y:
    read from X's TAP (Linux tx) == X.opackets + X.oqdrops + X.oerrors, and
    X.opackets == Y.ipackets, and
    written into Y's TAP (Linux rx) == Y.ipackets - Y.iqdrops - Y.ierrors."""
    ends = {e["name"]: e for e in request(connect(path), op="show")["interfaces"]}
    linux = {**linux_stats(ns_l), **linux_stats(ns_r)}
    bad = []
    total = 0
    for name, x in sorted(ends.items()):
        y = ends[name[:-1] + ("b" if name.endswith("a") else "a")]
        cx, cy = x["counters"], y["counters"]
        read = linux[name]["tx"]["packets"]
        written = linux[y["name"]]["rx"]["packets"]
        total += cx["opackets"]
        if read != cx["opackets"] + cx["oqdrops"] + cx["oerrors"]:
            bad.append("%s: Linux handed over %d, epair counted %d sent + %d dropped + %d errors" % (
                name, read, cx["opackets"], cx["oqdrops"], cx["oerrors"]))
        if cx["opackets"] != cy["ipackets"]:
            bad.append("%s sent %d, %s received %d" % (name, cx["opackets"], y["name"], cy["ipackets"]))
        if written != cy["ipackets"] - cy["iqdrops"] - cy["ierrors"]:
            bad.append("%s: received %d - %d dropped - %d errors, Linux took %d" % (
                y["name"], cy["ipackets"], cy["iqdrops"], cy["ierrors"], written))
    for line in bad[:20]:
        print(line)
    print("load.py: %d ends, %d frames, %d inconsistencies" % (len(ends), total, len(bad)), file=sys.stderr)
    return 1 if bad else 0


def usage_of(pid):
    """epaird's memory, descriptors and threads once it is idle: the last
    request's connection may still be open for a moment after its reply."""
    samples = []
    for _ in range(10):
        time.sleep(0.1)
        status = dict(line.split(":", 1) for line in open("/proc/%d/status" % pid))
        samples.append({"rss_kib": int(status["VmRSS"].split()[0]), "threads": int(status["Threads"]),
                        "fds": len(os.listdir("/proc/%d/fd" % pid))})
    return min(samples, key=lambda u: (u["fds"], u["threads"], u["rss_kib"]))


def churn(path, ns, pid, cycles, warmup):
    result = {}
    started = time.monotonic()
    for cycle in range(cycles):
        if cycle == warmup:
            result["baseline"] = usage_of(pid)
        conn = connect(path)
        a = request(conn, op="create", name="epair",
                    actions=[{"action": "vnet", "value": ns}, {"action": "inet", "value": "10.201.0.1/24"},
                             {"action": "up"}, {"action": "mtu", "value": 9000}])["name"]
        conn.close()
        conn = connect(path)
        request(conn, op="destroy", name=a)
        conn.close()
        if (cycle + 1) % 250 == 0:
            print("load.py: %d cycles in %.1f s" % (cycle + 1, time.monotonic() - started), file=sys.stderr)
    result["end"] = usage_of(pid)
    json.dump(result, sys.stdout)


def main():
    command, args = sys.argv[1], sys.argv[2:]
    if command == "setup":
        setup(args[0], args[1], args[2], int(args[3]))
    elif command == "echo":
        echo()
    elif command == "traffic":
        traffic(int(args[0]), float(args[1]), float(args[2]))
    elif command == "check":
        sys.exit(check(*args))
    elif command == "churn":
        churn(args[0], args[1], int(args[2]), int(args[3]), int(args[4]))
    else:
        raise SystemExit("load.py: unknown command " + command)


if __name__ == "__main__":
    main()
