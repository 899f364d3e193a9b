#!/usr/bin/env python3
"""A hostile memif client against an epair end serving on SOCKET: malformed
and out-of-order control messages, regions that could shrink, rings outside
their region, descriptors pointing anywhere, a chain that runs past what was
given, a head far ahead. Each must end in a DISCONNECT with its reason (or,
for a bad descriptor, a counted drop) and leave epaird serving.

usage: memif_hostile.py SOCKET EPAIRCTL IFNAME NETNS PEER_IFNAME SECRET
(IFNAME: the memif end, serving with SECRET; PEER_IFNAME: its peer, in
NETNS, sends a frame)"""

import fcntl
import json
import mmap
import os
import socket
import struct
import subprocess
import sys
import time

SOCKET, EPAIRCTL, IFNAME, NETNS, PEER, SECRET = sys.argv[1:7]
LOG2 = 4
RING = 1 << LOG2
BUFFER = 2048
RING_BYTES = 128 + 16 * RING
REGION = 2 * RING_BYTES + 2 * RING * BUFFER
failures = 0


def check(condition, what):
    global failures
    print(("ok: " if condition else "FAIL: ") + what)
    failures += 0 if condition else 1


def message(kind, body=b""):
    return (struct.pack("<H", kind) + body).ljust(128, b"\0")


def memif_state():
    out = subprocess.run([EPAIRCTL, "--json", IFNAME], capture_output=True, text=True, check=True).stdout
    return json.loads(out)["interfaces"][0]["memif"]


class Peer:
    def __init__(self):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.s.settimeout(5)
        self.s.connect(SOCKET)
        hello = self.s.recv(256)
        assert struct.unpack_from("<H", hello)[0] == 2, "no HELLO first"
        self.max_log2 = hello[44]

    def send(self, data, fds=()):
        if fds:
            socket.send_fds(self.s, [data], list(fds))
        else:
            self.s.send(data)

    def reply(self):
        """The next message: ('ack'|'connected'|'disconnect', reason) or ('closed', '')."""
        try:
            data = self.s.recv(256)
        except (ConnectionResetError, socket.timeout):
            return ("closed", "")
        if not data:
            return ("closed", "")
        kind = struct.unpack_from("<H", data)[0]
        if kind == 8:
            return ("disconnect", data[6:102].split(b"\0")[0].decode())
        return ({1: "ack", 7: "connected"}.get(kind, str(kind)), "")

    def init(self, version=0x200, id_=0, secret=SECRET.encode()):
        self.send(message(3, struct.pack("<HIB", version, id_, 0) + secret.ljust(24, b"\0") + b"hostile".ljust(32, b"\0")))
        return self.reply()

    def region(self, sealed=True, size=REGION, index=0):
        fd = os.memfd_create("hostile", os.MFD_ALLOW_SEALING if sealed else 0)
        os.ftruncate(fd, size)
        if sealed:
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK)
        self.memory = mmap.mmap(fd, size)
        self.send(message(4, struct.pack("<HQ", index, size)), [fd])
        os.close(fd)
        return self.reply()

    def ring(self, c2s, offset, log2=LOG2, region=0):
        efd = os.eventfd(0)
        self.send(message(5, struct.pack("<HHHIBH", 1 if c2s else 0, 0, region, offset, log2, 0)), [efd])
        if c2s:
            self.c2s_interrupt = efd
        return self.reply()

    def connect_fully(self):
        """A well-formed client: region, C2S ring 0 at 0, S2C ring 0 after it."""
        assert self.init() == ("ack", "")
        assert self.region() == ("ack", "")
        for ring_offset in (0, RING_BYTES):
            struct.pack_into("<IHH", self.memory, ring_offset, 0x3E31F20, 0, 0)
        assert self.ring(True, 0) == ("ack", "")
        assert self.ring(False, RING_BYTES) == ("ack", "")
        self.send(message(6, b"hostile0".ljust(32, b"\0")))
        return self.reply()

    def put(self, slot, flags, offset, length):
        struct.pack_into("<HHIII", self.memory, 128 + 16 * (slot % RING), flags, 0, length, offset, 0)

    def advance_head(self, head):
        struct.pack_into("<H", self.memory, 6, head & 0xFFFF)
        os.eventfd_write(self.c2s_interrupt, 1)


def expect_disconnect(peer, reply, reason):
    check(reply == ("disconnect", reason), f"refused with '{reason}' (got {reply})")
    check(peer.reply()[0] == "closed", "and the channel closed")


# Malformed and out-of-order messages.
p = Peer()
p.send(b"\x03\x00" + bytes(8))
expect_disconnect(p, p.reply(), "protocol: a message of 10 bytes, not 128")
p = Peer()
p.send(message(42))
expect_disconnect(p, p.reply(), "protocol: unknown message type 42")
p = Peer()
p.send(message(6, b"early".ljust(32, b"\0")))
expect_disconnect(p, p.reply(), "protocol: unexpected connect message")
p = Peer()
expect_disconnect(p, p.init(version=0x100), "memif version mismatch")
p = Peer()
reply = p.init()
check(reply == ("ack", ""), f"INIT accepted ({reply})")
p.send(message(4, struct.pack("<HQ", 0, REGION)))
expect_disconnect(p, p.reply(), "region 0 without a file descriptor")
p = Peer()
p.init()
expect_disconnect(p, p.region(sealed=False), "region not sealed against shrinking")
p = Peer()
p.init()
expect_disconnect(p, p.region(index=3), "region 3 out of order")
p = Peer()
p.init()
p.region()
expect_disconnect(p, p.ring(True, REGION - 64), f"ring at offset {REGION - 64} runs past its region ({REGION} bytes)")
p = Peer()
p.init()
p.region()
expect_disconnect(p, p.ring(True, 0, region=1), "ring in unknown region 1")
p = Peer()
p.init()
p.region()
expect_disconnect(p, p.ring(True, 0, log2=p.max_log2 + 1),
                  f"ring size 2^{p.max_log2 + 1} is not 2^1..2^{p.max_log2}")
p = Peer()
p.init()
p.region()
p.ring(True, 0)
p.ring(False, RING_BYTES)
p.send(message(6, b"x".ljust(32, b"\0")))
expect_disconnect(p, p.reply(), "ring 0 has a wrong cookie")

# Connected: descriptors pointing anywhere are dropped and counted.
p = Peer()
check(p.connect_fully() == ("connected", ""), "a well-formed client connects")
before = memif_state()["counters"]
p.put(0, 0, REGION, 64)           # starts at the region's end
p.put(1, 0, 0xFFFFFF00, 0x1000)   # offset + length past 4 GiB
p.put(2, 0, 2 * RING_BYTES, 60)   # a good one: a 60-byte frame
frame = bytes.fromhex("ffffffffffff0200000000aa88b5") + bytes(46)
p.memory[2 * RING_BYTES:2 * RING_BYTES + 60] = frame
p.advance_head(3)
time.sleep(0.5)
after = memif_state()["counters"]
check(after["bad_descriptor"] - before["bad_descriptor"] == 2, "two descriptors outside the region dropped and counted")
check(after["received"] - before["received"] == 1, "the good frame behind them received")
check(memif_state()["connected"], "still connected")
tail = struct.unpack_from("<H", p.memory, 64)[0]
check(tail == 3, f"all three descriptors given back (tail {tail})")

# A peer that talks out of turn once connected.
p.send(message(2, bytes(44)))
expect_disconnect(p, p.reply(), "protocol: unexpected hello message")

# A chain that runs past the descriptors the client gave.
p = Peer()
p.connect_fully()
p.put(0, 1, 2 * RING_BYTES, 60)
p.advance_head(1)
expect_disconnect(p, p.reply(), "a chain on receive ring 0 runs past the descriptors given")

# A head far ahead of the tail.
p = Peer()
p.connect_fully()
p.advance_head(RING + 5)
expect_disconnect(p, p.reply(), f"receive ring 0 claims {RING + 5} descriptors of {RING}")

# Buffers given for epair to write into, outside the region.
p = Peer()
p.connect_fully()
struct.pack_into("<HHIII", p.memory, RING_BYTES + 128, 0, 0, 2048, REGION - 100, 0)
struct.pack_into("<H", p.memory, RING_BYTES + 6, 1)
# The peer end's TAP shows carrier a moment after the connection; without
# it the kernel would not send.
deadline = time.time() + 5
while "LOWER_UP" not in subprocess.run(["ip", "-n", NETNS, "link", "show", PEER], capture_output=True,
                                       text=True).stdout and time.time() < deadline:
    time.sleep(0.05)
subprocess.run(["ip", "netns", "exec", NETNS, "python3", "-c",
                "import socket; s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW); s.bind(('%s', 0)); "
                "s.send(bytes.fromhex('0200000000990200000000aa88b5') + bytes(46))" % PEER], check=True)
reply = p.reply()
if reply[0] != "disconnect":
    print(subprocess.run([EPAIRCTL, "-v", PEER], capture_output=True, text=True).stdout, subprocess.run([EPAIRCTL, "-v", IFNAME], capture_output=True, text=True).stdout)
expect_disconnect(p, reply, "a descriptor the client gave on ring 0 lies outside its regions")

time.sleep(0.2)
state = memif_state()
check(not state["connected"] and state["counters"]["disconnects"] >= 15,
      f"epaird serving on: {state['counters']['disconnects']} disconnects counted")
sys.exit(1 if failures else 0)
