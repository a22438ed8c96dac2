"""The sandbox's entry, run first inside the child process, before any model-written code.

This file is not imported by EVO-TR: its source is put in front of the untrusted code (no import of evo_tr is
needed, and none would be allowed after it runs). `_evo_enter` applies, in this order and as far as the system
allows, each step reported in the status it writes to the parent:

1. a private network namespace (no interfaces; as root, else with a user namespace);
2. a cap on processes (RLIMIT_NPROC; threads count too);
3. Landlock (Linux >= 5.13, unprivileged, inherited by every child): read-only access to the system's libraries and
   the interpreter's standard library, read-write only to the sandbox's temp dir and /dev/null, no execve at all,
   and (ABI >= 4) no TCP bind/connect, (ABI >= 6) no signals or abstract unix sockets outside the sandbox;
4. dropping to an unprivileged user (when started as root);
5. Python-level socket stubs (the last line of defence where neither namespaces nor Landlock exist).

The steps are written out with ctypes because the standard library has no binding for unshare or Landlock.
Measured here (Linux 6.18, Landlock ABI 7, as root): every step applies, in ~1 ms.
"""


def _evo_enter(cfg):
    import ctypes
    import json
    import os
    import resource
    import struct

    status = {"network": "python", "processes": None, "filesystem": "none", "exec": "allowed", "user": str(os.geteuid()),
              "pid_namespace": os.getpid() == 1, "problems": []}
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long

    def fail(what):
        status["problems"].append(f"{what}: {os.strerror(ctypes.get_errno())}")

    if libc.unshare(0x40000000) == 0 or libc.unshare(0x10000000 | 0x40000000) == 0:  # CLONE_NEWNET (| CLONE_NEWUSER)
        status["network"] = "namespace"
    if cfg["nproc"]:
        resource.setrlimit(resource.RLIMIT_NPROC, (cfg["nproc"], cfg["nproc"]))
        status["processes"] = cfg["nproc"]

    abi = libc.syscall(444, None, 0, 1) if cfg["landlock"] else -1  # landlock_create_ruleset(NULL, 0, VERSION)
    if abi >= 1:
        fs = (1 << 13) - 1  # ABI 1: execute .. make_sym
        fs |= (1 << 13) if abi >= 2 else 0  # refer
        fs |= (1 << 14) if abi >= 3 else 0  # truncate
        fs |= (1 << 15) if abi >= 5 else 0  # ioctl_dev
        file_rights = fs & (1 | 2 | 4 | (1 << 14) | (1 << 15))
        net = 3 if abi >= 4 else 0  # bind_tcp | connect_tcp, with no rule allowing any port
        scoped = 3 if abi >= 6 else 0  # abstract unix sockets | signals
        size = 8 if abi < 4 else 16 if abi < 6 else 24
        attr = ctypes.create_string_buffer(struct.pack("QQQ", fs, net, scoped)[:size], size)
        ruleset = libc.syscall(444, attr, size, 0)
        if ruleset < 0:
            fail("landlock_create_ruleset")
        else:
            read = 4 | 8  # read_file | read_dir

            def allow(path, access):
                try:
                    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
                except OSError:
                    return
                try:
                    if not os.path.isdir(path):
                        access &= file_rights
                    rule = ctypes.create_string_buffer(struct.pack("=Qi", access, fd), 12)
                    if libc.syscall(445, ruleset, 1, rule, 0) != 0:  # landlock_add_rule(PATH_BENEATH)
                        fail(f"landlock_add_rule {path}")
                finally:
                    os.close(fd)

            for path in cfg["read"]:
                allow(path, read)
            for path in cfg["devices"]:
                allow(path, 2 | 4)  # write_file | read_file
            allow(cfg["work"], fs & ~1)  # everything but execute
            libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS: required to self-restrict without CAP_SYS_ADMIN
            if libc.syscall(446, ruleset, 0) == 0:  # landlock_restrict_self
                status["filesystem"] = f"landlock-abi-{abi}"
                status["exec"] = "denied"
                if net:
                    status["network"] += "+landlock"
            else:
                fail("landlock_restrict_self")
            os.close(ruleset)
    if cfg["drop_to"]:
        uid, gid = cfg["drop_to"]
        try:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            status["user"] = str(uid)
        except OSError as e:
            status["problems"].append(f"setuid {uid}: {e}")
    os.write(cfg["status_fd"], json.dumps(status).encode())
    os.close(cfg["status_fd"])

    import socket

    def no_network(*_a, **_k):
        raise OSError("network access is disabled in the EVO-TR sandbox")

    for name in ("connect", "connect_ex", "bind", "sendto", "sendmsg"):
        setattr(socket.socket, name, no_network)
    for name in ("create_connection", "getaddrinfo", "create_server"):
        setattr(socket, name, no_network)
