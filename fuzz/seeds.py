#!/usr/bin/env python3
"""Writes the starting corpus of each fuzz target into fuzz/corpus/NAME/.

The corpora grow from these by `scripts/fuzz --merge`; this script only
makes the first, readable inputs: real requests, command lines, frames and
a capture stream of the shapes epair meets.
"""
import hashlib
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, data):
    folder = os.path.join(HERE, "corpus", target)
    os.makedirs(folder, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


REQUESTS = [
    '{"v":1,"op":"version"}',
    '{"v":1,"op":"cloners"}',
    '{"v":1,"op":"list"}',
    '{"v":1,"op":"show","name":"epair0a"}',
    '{"v":1,"op":"create","name":"epair","actions":[{"action":"up"},{"action":"mtu","value":9000}]}',
    '{"v":1,"op":"configure","name":"epair0b","actions":[{"action":"vnet","value":"ns1"},'
    '{"action":"inet","value":"10.0.0.2/24"},{"action":"description","value":"right side"}]}',
    '{"v":1,"op":"configure","name":"epair0a","actions":[{"action":"ether","value":"02:00:00:00:00:01"},'
    '{"action":"inet6","value":"fd00::1/64"},{"action":"-vnet","value":"ns1"},{"action":"down"}]}',
    '{"v":1,"op":"destroy","name":"epair0a"}',
    '{"v":1,"op":"configure","name":"epair0a","actions":[{"action":"impair","value":"rate 100mbit burst 32k '
    'limit 1000 delay 20ms jitter 5ms distribution normal loss 1% duplicate 0.1% corrupt 0.01% reorder 5% '
    'gap 3 seed 42"}]}',
    '{"v":1,"op":"configure","name":"epair0a","actions":[{"action":"impair","value":"loss gemodel 1% 10% 70% 0.1%"}]}',
    '{"v":1,"op":"configure","name":"epair0a","actions":[{"action":"impair","value":"clear"}]}',
    '{"v":1,"op":"capture","interfaces":["epair0a","epair0b"],"direction":"in","snaplen":96,'
    '"count":10,"buffer_kib":64,"filter":"icmp or tcp port 80"}',
    '{"v":2,"op":"list"}',
    '{"op":"show","name":"epair0a","extra":1}',
]

COMMAND_LINES = [
    ["epair", "create"],
    ["epair7", "create", "mtu", "9000", "up"],
    ["epair0a", "vnet", "ns1", "inet", "10.4.6.1/24", "up"],
    ["epair0b", "-vnet", "ns1"],
    ["epair0a", "ether", "02:00:00:00:00:01", "description", "left side", "inet6", "fd00::1/64"],
    ["epair0a", "destroy"],
    ["epair0a", "impair", "rate", "100mbit", "burst", "32k", "limit", "1000", "delay", "20ms", "jitter", "5ms",
     "distribution", "pareto", "loss", "1%", "duplicate", "0.1%", "corrupt", "0.01%", "reorder", "5%", "gap", "3",
     "seed", "42"],
    ["epair0a", "up", "impair", "loss", "gemodel", "1%", "10%", "delay", "1.5s"],
    ["epair0a", "impair", "clear"],
    ["-a", "-v"],
    ["--json", "-l"],
    ["-C"],
    ["-s", "/tmp/x.sock", "epair0a"],
    ["stats", "-w", "0.5", "-c", "3", "epair0a"],
    ["capture", "epair0a,epair0b", "-i", "in", "-c", "5", "-s", "96", "-w", "-", "icmp"],
    ["--help"],
]


def ether(dst, src, ethertype, payload):
    return bytes.fromhex(dst.replace(":", "")) + bytes.fromhex(src.replace(":", "")) + \
        struct.pack("!H", ethertype) + payload


def ipv4(proto, payload, src=b"\x0a\x00\x00\x01", dst=b"\x0a\x00\x00\x02"):
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0x4000, 64, proto, 0, src, dst)
    return header + payload


def fold(total):
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def ipv6(next_header, payload):
    return struct.pack("!IHBB", 6 << 28, len(payload), next_header, 64) + \
        bytes.fromhex("fd000000000000000000000000000001") + bytes.fromhex("fd000000000000000000000000000002") + payload


A, B, BCAST = "02:00:00:00:00:0a", "02:00:00:00:00:0b", "ff:ff:ff:ff:ff:ff"
ICMP_ECHO = struct.pack("!BBHHH", 8, 0, 0, 7, 1) + bytes(56)
TCP_SYN = struct.pack("!HHIIBBHHH", 40000, 80, 1, 0, 5 << 4, 0x02, 65535, 0, 0)
TCP_DATA = struct.pack("!HHIIBBHHH", 40000, 5201, 1, 1, 5 << 4, 0x18, 65535, 0, 0) + bytes(8000)
UDP = struct.pack("!HHHH", 5353, 5353, 8 + 18, 0) + bytes(18)
ARP = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, bytes.fromhex("02000000000a"), b"\x0a\x00\x00\x01",
                  bytes(6), b"\x0a\x00\x00\x02")

FRAMES = [
    ether(B, A, 0x0800, ipv4(1, ICMP_ECHO)),
    ether(B, A, 0x0800, ipv4(6, TCP_SYN)),
    ether(B, A, 0x0800, ipv4(17, UDP)),
    ether(BCAST, A, 0x0806, ARP),
    ether(B, A, 0x86DD, ipv6(58, struct.pack("!BBHHH", 128, 0, 0, 7, 1) + bytes(56))),
    ether(B, A, 0x8100, struct.pack("!HH", 42, 0x0800) + ipv4(1, ICMP_ECHO)),
    ether(B, A, 0x88B5, bytes(46)),
    bytes(10),
]


def vnet_header(flags=0, gso_type=0, hdr_len=0, gso_size=0, csum_start=0, csum_offset=0):
    return struct.pack("=BBHHHH", flags, gso_type, hdr_len, gso_size, csum_start, csum_offset)


def frame_input(control, frame, header=vnet_header(), tag=0):
    return bytes([control]) + struct.pack("!H", tag) + header + frame


def pcapng_stream():
    def block(kind, body):
        body += bytes(-len(body) % 4)
        return struct.pack("=II", kind, len(body) + 12) + body + struct.pack("=I", len(body) + 12)

    def option(code, value):
        return struct.pack("=HH", code, len(value)) + value + bytes(-len(value) % 4)

    out = block(0x0A0D0D0A, struct.pack("=IHHq", 0x1A2B3C4D, 1, 0, -1) + option(4, b"epaird") + option(0, b""))
    out += block(1, struct.pack("=HHI", 1, 0, 262144) + option(2, b"epair0a") + option(9, b"\x09") + option(0, b""))
    ns = 1_700_000_000_000_000_000
    for direction, frame in ((2, FRAMES[0]), (1, FRAMES[3]), (2, FRAMES[5])):
        out += block(6, struct.pack("=IIIII", 0, ns >> 32, ns & 0xFFFFFFFF, len(frame), len(frame)) + frame +
                     bytes(-len(frame) % 4) + option(2, struct.pack("=I", direction)) + option(0, b""))
    stats = b"".join(option(code, struct.pack("=Q", value)) for code, value in ((4, 3), (6, 3), (5, 0), (7, 3)))
    out += block(5, struct.pack("=III", 0, ns >> 32, ns & 0xFFFFFFFF) + stats + option(0, b""))
    return out


BOOT_CONFIGS = [
    'cloned_interfaces="epair0 epair1"\n'
    'create_args_epair1="mtu 9000"\n'
    'ifconfig_epair0a="inet 10.4.6.1/24"\n'
    'ifconfig_epair0a_alias0="inet 10.4.6.11/24"\n'
    'ifconfig_epair0b="vnet web inet 10.4.6.2/24 mtu 9000"\n'
    "ifconfig_epair0b_ipv6='inet6 fd00:4:6::2/64'\n"
    'ifconfig_epair0b_descr="the web jail\'s end"\n',
    '# comment\n  cloned_interfaces=epair7 # trailing\nifconfig_epair7a=inet\\ 10.0.0.1/24\n'
    'ifconfig_epair7b="-txcsum group jails down"\n',
    'cloned_interfaces="epair bridge0"\nifconfig_em0="DHCP"\nifconfig_epair0b_name="jail0"\n'
    'ifconfig_epair0a="vnet $J"\nhostname=x\n',
]


def main():
    for request in REQUESTS:
        write("control_request", request.encode())
    for words in COMMAND_LINES:
        write("command_line", b"\0".join(w.encode() for w in words))
    for i, frame in enumerate(FRAMES):
        write("frame_input", frame_input(3, frame))
        write("frame_input", frame_input(8 | (i & 7), frame, tag=42))
    tcp = ether(B, A, 0x0800, ipv4(6, TCP_DATA))
    write("frame_input", frame_input(3, tcp, vnet_header(1, 1, 54, 1448, 34, 16)))
    write("frame_input", frame_input(0, tcp, vnet_header(1, 0x81, 54, 1448, 34, 16)))
    write("frame_input", frame_input(7, tcp, vnet_header(2)))
    inner = ether(B, A, 0x0800, ipv4(17, b"\x30\x39\x00\x35\x00\x0c\x00\x00abcd"))
    for vni, flags in ((0, 0x08), (2, 0x08), (3, 0x00), (1, 0x08)):
        vxlan_vni = 0xFFFFFF if vni == 3 else vni
        header = bytes([flags, 0, 0, 0]) + vxlan_vni.to_bytes(3, "big") + b"\0"
        write("vxlan_datagram", bytes([vni]) + header + inner)
    # Inner TCP checksums left to offload (the pseudo-header's sum only),
    # over IPv4 and IPv6, as a veth hands them over.
    segment = struct.pack("!HHIIBBHHH", 40000, 5201, 1, 1, 5 << 4, 0x18, 65535, 0, 0) + b"offload"
    for family, pseudo, frame in (
            (0x0800, b"\x0a\x00\x00\x01\x0a\x00\x00\x02", ipv4(6, segment)),
            (0x86DD, bytes.fromhex("fd000000000000000000000000000001fd000000000000000000000000000002"),
             ipv6(6, segment))):
        seed = fold(sum(struct.unpack("!%dH" % (len(pseudo) // 2), pseudo)) + 6 + len(segment))
        l4 = 20 if family == 0x0800 else 40
        frame = frame[:l4 + 16] + struct.pack("!H", seed) + frame[l4 + 18:]
        write("vxlan_datagram", b"\2\x08\0\0\0\0\0\2\0" + ether(B, A, family, frame))
    write("vxlan_datagram", b"\0remote 10.98.0.2 local 10.98.0.1 vni 42 dstport 4789 srcport 49152 65535 ttl 64 dev vt0")
    write("vxlan_datagram", b"\1remote fd98::2 vni 43 srcport 1000 1000")
    # memif control messages as DPDK's memif.h lays them out (type, then the
    # packed body, 128 bytes), and the words of `attach memif`.
    def memif(kind, body):
        return (struct.pack("<H", kind) + body).ljust(128, b"\0")
    name = b"DPDK 22.11".ljust(32, b"\0")
    for message in (memif(1, b""),
                    memif(2, name + struct.pack("<HHHHHB", 0x200, 0x200, 255, 0, 0, 14)),
                    memif(3, struct.pack("<HIB", 0x200, 0, 0) + b"secret".ljust(24, b"\0") + name),
                    memif(4, struct.pack("<HQ", 0, 4 * 1024 * 1024)),
                    memif(5, struct.pack("<HHHIBH", 1, 0, 0, 0, 10, 0)),
                    memif(6, b"memif0".ljust(32, b"\0")),
                    memif(7, b"epair0b".ljust(32, b"\0")),
                    memif(8, struct.pack("<I", 0) + b"incorrect secret".ljust(96, b"\0"))):
        write("memif_message", message)
    write("memif_message", struct.pack("<HHIII", 1, 0, 2048, 16512, 0) + struct.pack("<HHHIBH", 1, 0, 0, 0, 10, 0) +
          struct.pack("<II", 16512 + 2048 * 1024, 4096))
    write("memif_message", b"socket /run/vpp/memif.sock role client id 3 secret s ring-size 2048 buffer-size 9216 "
          b"queues 2 rx-mode polling")
    write("memif_message", b"socket @epair")
    write("capture_stream", bytes([0]) + pcapng_stream())
    write("capture_stream", bytes([7]) + pcapng_stream())
    for text in BOOT_CONFIGS:
        write("boot_config", text.encode())


if __name__ == "__main__":
    main()
