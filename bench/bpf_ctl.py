"""eBPF for the benchmarks, through libbpf (ctypes), where neither tc nor
Debian 12's bpftool reach: attaching a program by tcx, finding the programs
tcx holds on devices, and what those programs cost a run while the
kernel's statistics are on."""

import contextlib
import ctypes
import functools
import os
import socket

# BPF_TCX_INGRESS (Linux 6.6), BPF_STATS_RUN_TIME, and setns()'s namespace type.
TCX_INGRESS = 46
STATS_RUN_TIME = 0
CLONE_NEWNET = 0x40000000


@functools.cache
def _libraries():
    libc = ctypes.CDLL(None, use_errno=True)
    bpf = ctypes.CDLL("libbpf.so.1", use_errno=True)
    bpf.bpf_object__open_file.restype = ctypes.c_void_p
    bpf.bpf_object__open_file.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    bpf.bpf_object__load.argtypes = [ctypes.c_void_p]
    bpf.bpf_object__close.argtypes = [ctypes.c_void_p]
    bpf.bpf_object__find_program_by_name.restype = ctypes.c_void_p
    bpf.bpf_object__find_program_by_name.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    bpf.bpf_program__fd.argtypes = [ctypes.c_void_p]
    bpf.bpf_prog_attach.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_uint]
    bpf.bpf_prog_query.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_uint, ctypes.POINTER(ctypes.c_uint32),
                                   ctypes.POINTER(ctypes.c_uint32), ctypes.POINTER(ctypes.c_uint32)]
    bpf.bpf_prog_get_fd_by_id.argtypes = [ctypes.c_uint32]
    bpf.bpf_enable_stats.argtypes = [ctypes.c_int]
    return libc, bpf


def _failed(what):
    error = ctypes.get_errno()
    return RuntimeError(f"{what}: {os.strerror(error) if error else 'failed'}")


@contextlib.contextmanager
def _inside(netns_path):
    """The calling thread in the network namespace at netns_path (a file
    of /run/netns or a mount of epaird's hidden one), and back after."""
    libc, _ = _libraries()
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    there = os.open(netns_path, os.O_RDONLY)
    try:
        if libc.setns(there, CLONE_NEWNET) != 0:
            raise _failed(f"entering {netns_path}")
        try:
            yield
        finally:
            libc.setns(home, CLONE_NEWNET)
    finally:
        os.close(there)
        os.close(home)


def attach_tcx(netns_path, object_path, program, devices):
    """Loads program from the object at object_path and attaches it by tcx
    to the ingress of devices in the namespace at netns_path, as epaird
    attaches its own. The attachments hold the program after the object is
    closed, until the devices go."""
    _, bpf = _libraries()
    obj = bpf.bpf_object__open_file(object_path.encode(), None)
    if not obj:
        raise _failed(f"opening {object_path}")
    try:
        if bpf.bpf_object__load(obj) != 0:
            raise _failed(f"loading {object_path}")
        found = bpf.bpf_object__find_program_by_name(obj, program.encode())
        if not found:
            raise RuntimeError(f"{object_path} has no program {program}")
        fd = bpf.bpf_program__fd(found)
        with _inside(netns_path):
            for device in devices:
                if bpf.bpf_prog_attach(fd, socket.if_nametoindex(device), TCX_INGRESS, 0) != 0:
                    raise _failed(f"attaching {program} to {device} by tcx")
    finally:
        bpf.bpf_object__close(obj)


def tcx_programs(netns_path, devices):
    """The ids of the programs tcx holds at the ingress of devices in the
    namespace at netns_path."""
    _, bpf = _libraries()
    ids = set()
    with _inside(netns_path):
        for device in devices:
            found = (ctypes.c_uint32 * 8)()
            count = ctypes.c_uint32(len(found))
            if bpf.bpf_prog_query(socket.if_nametoindex(device), TCX_INGRESS, 0, None, found,
                                  ctypes.byref(count)) != 0:
                raise _failed(f"asking what tcx holds on {device}")
            ids.update(found[:count.value])
    return ids


def program_runs(program_ids):
    """(nanoseconds, runs) the programs have run, summed, as the kernel
    counts them while statistics are on (statistics())."""
    _, bpf = _libraries()
    nanoseconds = runs = 0
    for program_id in program_ids:
        fd = bpf.bpf_prog_get_fd_by_id(program_id)
        if fd < 0:
            raise _failed(f"program {program_id}")
        try:
            with open(f"/proc/self/fdinfo/{fd}") as info:
                fields = dict(line.split(":", 1) for line in info if ":" in line)
        finally:
            os.close(fd)
        nanoseconds += int(fields["run_time_ns"])
        runs += int(fields["run_cnt"])
    return nanoseconds, runs


@contextlib.contextmanager
def statistics():
    """The kernel counts every eBPF program's runs and their time while
    this lasts (BPF_ENABLE_STATS: no sysctl left on if the caller dies).
    The time includes two clock reads a run."""
    _, bpf = _libraries()
    fd = bpf.bpf_enable_stats(STATS_RUN_TIME)
    if fd < 0:
        raise _failed("turning on eBPF statistics")
    try:
        yield
    finally:
        os.close(fd)
