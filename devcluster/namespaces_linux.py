"""Linux namespace, mount and capability calls through ctypes (Python 3.11 has no os.unshare).

Only the standard library is used: the container shim imports this module in a bare interpreter
(`python -I -S`) before it drops privileges and executes a container's command.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import fcntl
import os
import socket
import struct

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24

PR_SET_PDEATHSIG = 1
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38

# Per-mount options that a read-only bind remount must repeat, or the kernel would clear them.
_MOUNT_FLAGS = {
    "nosuid": MS_NOSUID,
    "nodev": MS_NODEV,
    "noexec": MS_NOEXEC,
    "noatime": MS_NOATIME,
    "nodiratime": MS_NODIRATIME,
    "relatime": MS_RELATIME,
    "strictatime": MS_STRICTATIME,
}

# Capability numbers from linux/capability.h, by the names Kubernetes uses (without CAP_).
CAPABILITIES = {
    "CHOWN": 0,
    "DAC_OVERRIDE": 1,
    "DAC_READ_SEARCH": 2,
    "FOWNER": 3,
    "FSETID": 4,
    "KILL": 5,
    "SETGID": 6,
    "SETUID": 7,
    "SETPCAP": 8,
    "LINUX_IMMUTABLE": 9,
    "NET_BIND_SERVICE": 10,
    "NET_BROADCAST": 11,
    "NET_ADMIN": 12,
    "NET_RAW": 13,
    "IPC_LOCK": 14,
    "IPC_OWNER": 15,
    "SYS_MODULE": 16,
    "SYS_RAWIO": 17,
    "SYS_CHROOT": 18,
    "SYS_PTRACE": 19,
    "SYS_PACCT": 20,
    "SYS_ADMIN": 21,
    "SYS_BOOT": 22,
    "SYS_NICE": 23,
    "SYS_RESOURCE": 24,
    "SYS_TIME": 25,
    "SYS_TTY_CONFIG": 26,
    "MKNOD": 27,
    "LEASE": 28,
    "AUDIT_WRITE": 29,
    "AUDIT_CONTROL": 30,
    "SETFCAP": 31,
    "MAC_OVERRIDE": 32,
    "MAC_ADMIN": 33,
    "SYSLOG": 34,
    "WAKE_ALARM": 35,
    "BLOCK_SUSPEND": 36,
    "AUDIT_READ": 37,
    "PERFMON": 38,
    "BPF": 39,
    "CHECKPOINT_RESTORE": 40,
}
# What containerd grants a container by default (the set a pod gets without `capabilities`).
DEFAULT_CAPABILITIES = (
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
)

_LINUX_CAPABILITY_VERSION_3 = 0x20080522
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.mount.argtypes = [
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_void_p,
]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.prctl.argtypes = [
    ctypes.c_int,
    ctypes.c_ulong,
    ctypes.c_ulong,
    ctypes.c_ulong,
    ctypes.c_ulong,
]
_libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]


def _check(result: int, what: str) -> None:
    if result != 0:
        number = ctypes.get_errno()
        raise OSError(number, f"{what}: {os.strerror(number)}")


def unshare(flags: int) -> None:
    """Move the calling process into new namespaces (PID: only its future children)."""
    _check(_libc.unshare(flags), "unshare")


def mount(
    source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None
) -> None:
    """mount(2)."""

    def encode(value: str | None) -> bytes | None:
        return None if value is None else os.fsencode(value)

    _check(
        _libc.mount(encode(source), encode(target), encode(fstype), flags, encode(data)),
        f"mount {target}",
    )


def sethostname(name: str) -> None:
    """Set the host name of the current UTS namespace."""
    raw = name.encode()
    _check(_libc.sethostname(raw, len(raw)), "sethostname")


def prctl(option: int, argument: int = 0) -> None:
    """prctl(2) with one argument."""
    _check(_libc.prctl(option, argument, 0, 0, 0), f"prctl {option}")


def set_parent_death_signal(signum: int) -> None:
    """Receive `signum` when the parent (thread) that forked us exits."""
    prctl(PR_SET_PDEATHSIG, signum)


def set_no_new_privs() -> None:
    """Forbid gaining privileges through execve (setuid binaries, file capabilities)."""
    prctl(PR_SET_NO_NEW_PRIVS, 1)


def capability_numbers(names: list[str] | tuple[str, ...]) -> set[int]:
    """Numbers of capabilities named as in a securityContext (`NET_ADMIN` or `CAP_NET_ADMIN`)."""
    numbers = set()
    for name in names:
        key = name.upper().removeprefix("CAP_")
        if key == "ALL":
            numbers.update(CAPABILITIES.values())
        elif key in CAPABILITIES:
            numbers.add(CAPABILITIES[key])
    return numbers


def drop_bounding_capabilities(keep: set[int]) -> None:
    """Remove every capability outside `keep` from the bounding set, so no later execve (of a
    setuid or file-capability binary) can gain it; needs CAP_SETPCAP."""
    last = int(_read_text("/proc/sys/kernel/cap_last_cap", "40"))
    for number in range(last + 1):
        if number not in keep:
            with contextlib.suppress(OSError):  # unknown to this kernel
                prctl(PR_CAPBSET_DROP, number)


def set_capabilities(keep: set[int]) -> None:
    """Make `keep` the effective, permitted and inheritable capabilities of the caller."""
    low = sum(1 << n for n in keep if n < 32)
    high = sum(1 << (n - 32) for n in keep if n >= 32)
    header = struct.pack("II", _LINUX_CAPABILITY_VERSION_3, 0)
    data = struct.pack("6I", low, low, low, high, high, high)  # effective, permitted, inheritable
    header_buffer = ctypes.create_string_buffer(header)
    data_buffer = ctypes.create_string_buffer(data)
    _check(_libc.capset(header_buffer, data_buffer), "capset")


def _read_text(path: str, default: str) -> str:
    try:
        with open(path, encoding="ascii") as handle:
            return handle.read().strip()
    except OSError:
        return default


def mount_points() -> list[tuple[str, set[str]]]:
    """(mount point, per-mount options) of every mount the calling process sees."""
    found = []
    with open("/proc/self/mountinfo", encoding="utf-8") as handle:
        for line in handle:
            fields = line.split(" ")
            point = fields[4]
            for escaped, plain in (
                ("\\040", " "),
                ("\\011", "\t"),
                ("\\012", "\n"),
                ("\\134", "\\"),
            ):
                point = point.replace(escaped, plain)
            found.append((point, set(fields[5].split(","))))
    return found


def remount_read_only(point: str, options: set[str]) -> None:
    """Make one mount read-only in this mount namespace, keeping its other per-mount flags."""
    flags = MS_REMOUNT | MS_BIND | MS_RDONLY
    for option in options:
        flags |= _MOUNT_FLAGS.get(option, 0)
    mount(None, point, None, flags)


def loopback_up() -> None:
    """Bring up `lo` in a fresh network namespace (it starts down)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(sock.fileno(), _SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock.fileno(), _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | _IFF_UP))


MNT_DETACH = 0x2
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]


def unmount(target: str) -> None:
    """Lazily unmount `target` (it disappears now, and is freed once no longer busy)."""
    _check(_libc.umount2(os.fsencode(target), MNT_DETACH), f"umount {target}")
