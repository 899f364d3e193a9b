"""Two namespaces joined by an epair and two by a veth pair, for the
benchmarks that compare them: a private epaird, iperf3 and ping helpers,
and a teardown that removes everything."""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time

import bpf_ctl

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Parser(argparse.ArgumentParser):
    """argparse, with a bad argument reported in one line (exit 2) instead
    of the usage block and the message."""

    def __init__(self, description):
        super().__init__(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)

    def error(self, message):
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


def progress(tool, message):
    print(f"{tool}: {message}", file=sys.stderr, flush=True)


def run(*args, check=True, **kwargs):
    return subprocess.run(args, check=check, capture_output=True, text=True, **kwargs)


def remove_work(work):
    """Removes a benchmark's work directory, and first what is mounted in it:
    the hidden namespace of an epaird on the kernel data path, whose
    devices go with its mount and would outlive the run otherwise."""
    inside = work.rstrip("/") + "/"
    with open("/proc/mounts") as mounts:
        points = [fields[1] for fields in (line.split() for line in mounts) if fields[1].startswith(inside)]
    for point in reversed(points):
        run("umount", point, check=False)
    shutil.rmtree(work, ignore_errors=True)


class Lab:
    """Namespaces, a veth pair, and a private epaird with one epair."""

    def __init__(self, epaird, epairctl, delivery, busy_poll, datapath="tap"):
        self.delivery = delivery
        self.busy_poll = busy_poll
        self.datapath = datapath
        self.tag = f"nvv{os.getpid()}"
        self.work = tempfile.mkdtemp(prefix="epair-bench.")
        self.env = dict(os.environ, EPAIR_SOCKET=os.path.join(self.work, "epaird.sock"))
        self.epairctl = epairctl
        self.namespaces = []
        self.daemon = None
        self.epaird = epaird

    def ns(self, suffix):
        name = f"{self.tag}-{suffix}"
        run("ip", "netns", "add", name)
        run("ip", "-n", name, "link", "set", "lo", "up")
        self.namespaces.append(name)
        return name

    def ctl(self, *args):
        return run(self.epairctl, *args, env=self.env).stdout.strip()

    def datapath_args(self):
        # An epaird built before the kernel data path has no --datapath:
        # the TAP path is the only one it has.
        if "--datapath" in run(self.epaird, "--help", check=False).stdout:
            return ["--datapath", self.datapath]
        if self.datapath == "tap":
            return []
        raise SystemExit(f"{self.epaird} has no kernel data path (no --datapath); measure it with --datapath tap")

    def setup(self):
        self.daemon = subprocess.Popen(
            [self.epaird, "--socket", self.env["EPAIR_SOCKET"], "--state-dir", os.path.join(self.work, "state"),
             "--log-level", "warn", "--delivery", self.delivery,
             "--busy-poll", str(self.busy_poll)] + self.datapath_args(), stderr=subprocess.DEVNULL)
        for _ in range(100):
            if os.path.exists(self.env["EPAIR_SOCKET"]):
                break
            time.sleep(0.05)
        e1, e2, v1, v2 = self.ns("e1"), self.ns("e2"), self.ns("v1"), self.ns("v2")
        a = self.ctl("epair", "create")
        b = a[:-1] + "b"
        self.ctl(a, "vnet", e1, "inet", "10.81.0.1/24", "up")
        self.ctl(b, "vnet", e2, "inet", "10.81.0.2/24", "up")
        run("ip", "link", "add", f"{self.tag}v", "netns", v1, "type", "veth", "peer", "name", f"{self.tag}w",
            "netns", v2)
        run("ip", "-n", v1, "addr", "add", "10.82.0.1/24", "dev", f"{self.tag}v")
        run("ip", "-n", v2, "addr", "add", "10.82.0.2/24", "dev", f"{self.tag}w")
        run("ip", "-n", v1, "link", "set", f"{self.tag}v", "up")
        run("ip", "-n", v2, "link", "set", f"{self.tag}w", "up")
        self.paths = {"epair": (e1, e2, "10.81.0.2"), "veth": (v1, v2, "10.82.0.2")}
        # The device that receives on each path, in its server's namespace.
        self.receivers = {"epair": b, "veth": f"{self.tag}w"}
        # The sending ends, where shaping and impairment go.
        self.epair_end, self.veth_end = a, f"{self.tag}v"
        self.epair_ends = (a, b)
        self.await_paths(list(self.paths))

    def setup_ceiling(self, clang="clang", hook="tcx"):
        """Adds the path "ceiling": two veth pairs whose far ends share a
        namespace of their own, crossed by ceiling.bpf.c alone
        (bpf_redirect_peer), the structure of epair's kernel path without
        epair's program. hook: "tcx", as epaird attaches its programs where
        the kernel has it, or "tc" (clsact and cls_bpf). Needs clang, and tc
        for "tc"."""
        c1, c2, hidden = self.ns("c1"), self.ns("c2"), self.ns("ch")
        for near, far, ns in (("ca", "ha", c1), ("cb", "hb", c2)):
            run("ip", "link", "add", near, "netns", ns, "type", "veth", "peer", "name", far, "netns", hidden)
            run("ip", "-n", hidden, "link", "set", far, "up")
        index = {far: int(run("ip", "-n", hidden, "-o", "link", "show", far).stdout.split(":")[0])
                 for far in ("ha", "hb")}
        program = os.path.join(self.work, "ceiling.bpf.o")
        # The kernel's headers for this machine (asm/types.h), as CMake finds them for datapath.bpf.c.
        arch = sysconfig.get_config_var("MULTIARCH") or f"{platform.machine()}-linux-gnu"
        run(clang, "-O2", "-target", "bpf", f"-I/usr/include/{arch}", f"-DEND_A={index['ha']}",
            f"-DEND_B={index['hb']}", "-c", os.path.join(ROOT, "bench", "ceiling.bpf.c"), "-o", program)
        if hook == "tcx":
            bpf_ctl.attach_tcx(f"/run/netns/{hidden}", program, "cross", ("ha", "hb"))
        else:
            for far in ("ha", "hb"):
                run("tc", "-n", hidden, "qdisc", "add", "dev", far, "clsact")
                run("tc", "-n", hidden, "filter", "add", "dev", far, "ingress", "bpf", "da", "obj", program, "sec", "tc")
        run("ip", "-n", c1, "addr", "add", "10.83.0.1/24", "dev", "ca")
        run("ip", "-n", c2, "addr", "add", "10.83.0.2/24", "dev", "cb")
        run("ip", "-n", c1, "link", "set", "ca", "up")
        run("ip", "-n", c2, "link", "set", "cb", "up")
        self.ceiling_netns = hidden
        self.paths["ceiling"] = (c1, c2, "10.83.0.2")
        self.receivers["ceiling"] = "cb"
        self.await_paths(["ceiling"])

    def bridge_receivers(self):
        """Makes each path's receiving device a port of a bridge in its
        namespace, the address moved to the bridge, whose Ethernet address
        is its own: what the client sends is for the bridge's address, not
        the device's, as in a lab of namespaces joined by a bridge."""
        for name, (client, server, address) in self.paths.items():
            device = self.receivers[name]
            run("ip", "-n", server, "addr", "del", f"{address}/24", "dev", device)
            run("ip", "-n", server, "link", "add", "br0", "address", "02:00:00:00:00:01", "type", "bridge")
            run("ip", "-n", server, "link", "set", device, "master", "br0")
            run("ip", "-n", server, "addr", "add", f"{address}/24", "dev", "br0")
            run("ip", "-n", server, "link", "set", "br0", "up")
            run("ip", "-n", client, "neigh", "flush", "all")
        self.await_paths(list(self.paths))

    def programs(self, path):
        """The ids of the eBPF programs tcx holds on path's hidden devices:
        epair's (kernel path, hidden veths named "v" and the end's name) or
        the ceiling's; none when tc holds them instead."""
        if path == "epair":
            return bpf_ctl.tcx_programs(os.path.join(self.work, "state", "hidden.netns"),
                                        [f"v{end}" for end in self.epair_ends])
        return bpf_ctl.tcx_programs(f"/run/netns/{self.ceiling_netns}", ("ha", "hb"))

    def await_paths(self, names):
        for name in names:
            client, _, address = self.paths[name]
            deadline = time.time() + 5
            while run("ip", "netns", "exec", client, "ping", "-c", "1", "-W", "1", address, check=False).returncode:
                if time.time() > deadline:
                    raise RuntimeError(f"no connectivity through {name}")

    def teardown(self):
        if self.daemon:
            run(self.epairctl, "-l", env=self.env, check=False)
            for name in run(self.epairctl, "-l", env=self.env, check=False).stdout.split():
                if name.endswith("a"):
                    run(self.epairctl, name, "destroy", env=self.env, check=False)
            self.daemon.terminate()
            self.daemon.wait()
        for name in self.namespaces:
            run("ip", "netns", "del", name, check=False)
        remove_work(self.work)

    def iperf(self, path, seconds, udp):
        """TCP: Gbit/s received. UDP: datagrams received a second, and the
        share of a CPU the receiving iperf3 used (near 100 when it could not
        keep up and was never asleep, lower when the sender had to wake it)."""
        client, server, address = self.paths[path]
        srv = subprocess.Popen(["ip", "netns", "exec", server, "iperf3", "-s", "-1", "-J", "-B", address],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            deadline = time.time() + 5
            while "5201" not in run("ip", "netns", "exec", server, "ss", "-ltnH").stdout:
                if time.time() > deadline:
                    raise RuntimeError("iperf3 server did not start")
                time.sleep(0.05)
            args = ["ip", "netns", "exec", client, "iperf3", "-c", address, "-t", str(seconds), "-J"]
            if udp:
                # 18 bytes of payload: 14 + 20 + 8 + 18 = 60, a 64-byte frame with its FCS.
                args += ["-u", "-l", "18", "-b", "0"]
            result = json.loads(run(*args).stdout)
        finally:
            served = srv.communicate(timeout=10)[0]
        end = result["end"]
        if udp:
            summary = end["sum"]
            receiver_cpu = json.loads(served)["end"]["cpu_utilization_percent"]["host_total"]
            return (summary["packets"] - summary["lost_packets"]) / summary["seconds"], receiver_cpu
        return end["sum_received"]["bits_per_second"] / 1e9

    def ping(self, path, count):
        client, _, address = self.paths[path]
        out = run("ip", "netns", "exec", client, "ping", "-c", str(count), "-i", "0.005", address).stdout
        rtts = [float(line.split("time=")[1].split()[0]) * 1000 for line in out.splitlines() if "time=" in line]
        rtts.sort()
        return rtts[len(rtts) // 2], rtts[min(len(rtts) - 1, int(len(rtts) * 0.99))]
