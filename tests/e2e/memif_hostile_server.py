#!/usr/bin/env python3
"""Hostile memif servers against the two ends of one epair attached as
clients with zero-copy on: this script serves both sockets. A frame put in
a relay buffer on the sending end arrives on the other end's ring pointing
at the same bytes of region 1; a descriptor longer than its buffer is
dropped and counted; a chain running past the descriptors given, a tail far
ahead on the sending side, and a tail ahead of the transmit ring's head on
the receiving side each end their connection with the reason; the ends
reconnect, and once both servers are gone every relay buffer is free again.

usage: memif_hostile_server.py IN_SOCKET OUT_SOCKET EPAIRCTL IN_END OUT_END
(IN_END attached with socket IN_SOCKET, OUT_END, its peer, with OUT_SOCKET;
both role client, zero-copy on, neither connected yet)"""

import json
import mmap
import os
import socket
import struct
import subprocess
import sys
import time

IN_SOCKET, OUT_SOCKET, EPAIRCTL, IN_END, OUT_END = sys.argv[1:6]
LOG2 = 4
RING = 1 << LOG2
HEAD, TAIL = 6, 64
failures = 0


def check(condition, what):
    global failures
    print(("ok: " if condition else "FAIL: ") + what)
    failures += 0 if condition else 1


def message(kind, body=b""):
    return (struct.pack("<H", kind) + body).ljust(128, b"\0")


def memif(end):
    out = subprocess.run([EPAIRCTL, "--json", end], capture_output=True, text=True, check=True).stdout
    return json.loads(out)["interfaces"][0]["memif"]


def wait_until(what, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if what():
            return True
        time.sleep(0.05)
    return False


def listener(path):
    if os.path.exists(path):
        os.unlink(path)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.bind(path)
    s.listen(1)
    s.settimeout(10)
    return s


class Session:
    """One connection as a memif server: HELLO offering 256 regions and
    rings of RING, then whatever the client announces."""

    def __init__(self, server):
        self.c, _ = server.accept()
        self.c.settimeout(5)
        self.c.send(message(2, b"hostile-server".ljust(32, b"\0") + struct.pack("<HHHHHB", 0x200, 0x200, 255, 0, 0,
                                                                                  LOG2)))
        self.regions, self.rings = {}, {}
        while True:
            data, fds, _, _ = socket.recv_fds(self.c, 256, 4)
            kind = struct.unpack_from("<H", data)[0]
            if kind == 4:
                index, size = struct.unpack_from("<HQ", data, 2)
                self.regions[index] = mmap.mmap(fds[0], size)
            elif kind == 5:
                flags, _, region, offset = struct.unpack_from("<HHHI", data, 2)
                self.rings["c2s" if flags & 1 else "s2c"] = (region, offset, fds[0] if fds else None)
            if kind == 6:
                self.c.send(message(7, b"hostile".ljust(32, b"\0")))
                return
            self.c.send(message(1))

    def ring(self, name):
        region, offset, interrupt = self.rings[name]
        return self.regions[region], offset, interrupt

    def index(self, name, at):
        memory, offset, _ = self.ring(name)
        return struct.unpack_from("<H", memory, offset + at)[0]

    def set_index(self, name, at, value):
        memory, offset, interrupt = self.ring(name)
        struct.pack_into("<H", memory, offset + at, value & 0xFFFF)
        if name == "s2c":
            os.eventfd_write(interrupt, 1)

    def descriptor(self, name, slot):
        """(flags, region, length, offset)"""
        memory, offset, _ = self.ring(name)
        return struct.unpack_from("<HHII", memory, offset + 128 + 16 * (slot % RING))

    def fill(self, slot, payload, flags=0, length=None):
        """Writes a frame into the buffer the client gave at slot of S2C."""
        _, region, _, at = self.descriptor("s2c", slot)
        self.regions[region][at:at + len(payload)] = payload
        memory, offset, _ = self.ring("s2c")
        struct.pack_into("<HHI", memory, offset + 128 + 16 * (slot % RING), flags, region,
                         len(payload) if length is None else length)
        return region, at

    def disconnect_reason(self):
        try:
            data = self.c.recv(256)
        except (ConnectionResetError, socket.timeout):
            return None
        if len(data) >= 102 and struct.unpack_from("<H", data)[0] == 8:
            return data[6:102].split(b"\0")[0].decode()
        return None


def counters(end):
    return memif(end)["counters"]


in_server, out_server = listener(IN_SOCKET), listener(OUT_SOCKET)
out = Session(out_server)
sender = Session(in_server)
check(wait_until(lambda: memif(IN_END)["relaying"] and memif(OUT_END)["relaying"]),
      "both ends connected, each announcing the relay region as region 1")
check(sorted(sender.regions) == [0, 1] and sender.regions[1].size() == out.regions[1].size(),
      f"regions 0 and 1, the relay region the same size on both ({sender.regions[1].size()} bytes)")
check(wait_until(lambda: sender.index("s2c", HEAD) == RING), f"{IN_END} gave a whole ring of relay buffers")

before_in, before_out = counters(IN_END), counters(OUT_END)
frame = bytes.fromhex("020000000002" "020000000001" "88b5") + b"relayed, never copied".ljust(50, b".")
region, at = sender.fill(0, frame)
sender.fill(1, frame, length=2049)
sender.set_index("s2c", TAIL, 2)
check(wait_until(lambda: out.index("c2s", HEAD) == 1), f"one frame on {OUT_END}'s ring")
flags, out_region, length, out_at = out.descriptor("c2s", 0)
check((region, out_region, at == out_at, length, flags) == (1, 1, True, len(frame), 0),
      f"its descriptor points at the very buffer the sender filled (region 1, offset {out_at}, {length} bytes)")
check(out.regions[1][out_at:out_at + len(frame)] == frame, "and the bytes are the sender's")
after_in, after_out = counters(IN_END), counters(OUT_END)
check(after_in["relayed"] - before_in["relayed"] == 1 and after_out["sent"] - before_out["sent"] == 1,
      "counted: one relayed, one sent")
check(after_in["bad_descriptor"] - before_in["bad_descriptor"] == 1,
      "a descriptor of 2049 bytes in a 2048-byte buffer dropped, counted as a bad descriptor")

# The receiving server moves its tail past the head epaird published.
out.set_index("c2s", TAIL, out.index("c2s", HEAD) + 5)
sender.fill(2, frame)
sender.set_index("s2c", TAIL, 3)
reason = out.disconnect_reason()
check(reason == f"transmit ring 0 has {RING + 1} free descriptors of {RING}", f"{OUT_END} disconnected: {reason}")
out = Session(out_server)
check(wait_until(lambda: memif(OUT_END)["relaying"]), f"{OUT_END} reconnected")

sender.fill(3, frame, flags=1)
sender.set_index("s2c", TAIL, 4)
reason = sender.disconnect_reason()
check(reason == "a chain on receive ring 0 runs past the descriptors given", f"{IN_END} disconnected: {reason}")
sender = Session(in_server)
check(wait_until(lambda: sender.index("s2c", HEAD) == RING), f"{IN_END} reconnected and gave a whole ring again")
sender.set_index("s2c", TAIL, 40)
reason = sender.disconnect_reason()
check(reason == f"receive ring 0 claims 40 descriptors of {RING}", f"{IN_END} disconnected: {reason}")

sender.c.close()
out.c.close()
in_server.close()
out_server.close()
os.unlink(IN_SOCKET)
os.unlink(OUT_SOCKET)
check(wait_until(lambda: not memif(IN_END)["connected"] and not memif(OUT_END)["connected"]), "both ends let go")
free = (memif(IN_END)["relay_buffers_free"], memif(OUT_END)["relay_buffers_free"])
total = memif(IN_END)["relay_buffers"]
check(free == (total, total), f"every relay buffer free again: {free[0]} and {free[1]} of {total}")
sys.exit(1 if failures else 0)
