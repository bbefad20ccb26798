"""The launcher of ``scoder.sandbox``: run as a script (``python -I -S sandbox_launch.py
--launch config.json``) between the caller and the program.

It enters the namespaces, sets up the mounts (one capped tmpfs for everything the
program may write, the work dir's files copied in), forks a tiny init (PID 1 of the new
PID namespace) that runs the program as its child, applies the rlimits, drops to the
fresh uid and execs the program; then records how full the tmpfs got, copies a kept
work dir back out, mirrors the program's exit status and writes what isolation it
applied to the status file.  Standard library only: with ``-I -S``
it cannot import the project.  See ``scoder.sandbox`` for what each step protects.
"""
from __future__ import annotations

import ctypes
import errno
import json
import os
import re
import signal
import stat
import sys

SETUP_FAILED = 126  # exit code of the launcher when the sandbox could not be set up
PRIVATE_TMP = ("/tmp", "/var/tmp", "/run/lock", "/dev/shm")  # the world-writable places

CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWNS = 0x04000000, 0x08000000, 0x00020000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18
# per-mount options as /proc/self/mountinfo shows them; a remount must keep them (in a
# user namespace the kernel refuses to drop them)
_MOUNT_OPTIONS = {"ro": MS_RDONLY, "nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC,
                  "noatime": 1024, "nodiratime": 2048, "relatime": 1 << 21,
                  "strictatime": 1 << 24}
_KERNEL_FS = ("/proc", "/sys", "/dev")  # their files obey their own permission rules
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38
_NAMESPACES = {"net": CLONE_NEWNET, "pid": CLONE_NEWPID, "mount": CLONE_NEWNS,
               "ipc": CLONE_NEWIPC, "uts": CLONE_NEWUTS}


def _libc() -> ctypes.CDLL:
    # os.unshare arrived in Python 3.12 and os.mount not at all; ctypes covers both
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                           ctypes.c_ulong, ctypes.c_char_p]
    libc.unshare.argtypes = [ctypes.c_int]
    return libc


def _mount(libc, source, target, fstype, flags, data=None) -> None:
    args = [a.encode() if a is not None else None for a in (source, target, fstype)]
    if libc.mount(*args, flags, data.encode() if data else None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {target}: {os.strerror(err)}")


def _unshare(libc, root: bool) -> dict:
    """Enter new namespaces; returns which ones were applied."""
    every = sum(_NAMESPACES.values())
    if not root:  # an unprivileged user may still own a user namespace (and so the rest)
        ok = libc.unshare(CLONE_NEWUSER | every) == 0
        if ok:
            uid, gid = os.geteuid(), os.getegid()
            for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"),
                               ("gid_map", f"{gid} {gid} 1")):
                with open(f"/proc/self/{name}", "w") as f:
                    f.write(text)
        return {**dict.fromkeys(_NAMESPACES, ok), "user": ok}
    if libc.unshare(every) == 0:
        return {**dict.fromkeys(_NAMESPACES, True), "user": False}
    # e.g. a container that forbids some of them: take what is allowed
    return {**{name: libc.unshare(flag) == 0 for name, flag in _NAMESPACES.items()}, "user": False}


def _inside(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip(os.sep) + os.sep)


def _blocked_parent(path: str, uid: int) -> str | None:
    """The outermost directory above ``path`` that ``uid`` cannot traverse."""
    parts = os.path.realpath(path).split(os.sep)[1:]
    for i in range(1, len(parts)):
        d = os.sep + os.path.join(*parts[:i])
        st = os.stat(d)
        if not (st.st_mode & 0o001 or (st.st_uid == uid and st.st_mode & 0o100)):
            return d
    return None


def _bind(libc, fd: int, target: str) -> None:
    """Bind the directory open as ``fd`` onto ``target`` (made if missing)."""
    os.makedirs(target, exist_ok=True)
    _mount(libc, f"/proc/self/fd/{fd}", target, None, MS_BIND | MS_REC)


def _open_dir(path: str, dir_fd: int | None = None) -> int:
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)


def _overmount(libc, dirs: list[str], keep: list[str], mode: str, size_mb: int) -> None:
    """Put an empty tmpfs over each of ``dirs``, then bind ``keep`` paths back into it."""
    fds = {p: _open_dir(p) for p in keep if os.path.isdir(p)}
    for d in dirs:
        _mount(libc, "tmpfs", d, "tmpfs", MS_NOSUID | MS_NODEV, f"mode={mode},size={size_mb}m")
    for p, fd in sorted(fds.items()):
        _bind(libc, fd, p)
        os.close(fd)


def _setup_mounts(libc, cfg: dict, host_work: int) -> tuple[dict, int]:
    """Mounts of the namespace; returns what was applied and the program's work dir
    in the tmpfs (open), whose contents come from ``host_work`` (the caller's)."""
    _mount(libc, None, "/", None, MS_REC | MS_PRIVATE)  # nothing we mount leaks to the host
    work = os.path.realpath(cfg["work_dir"])
    tmp_dirs = [d for d in PRIVATE_TMP if os.path.isdir(d) and not os.path.islink(d)]
    def under_tmp(p: str) -> bool:
        return any(p.startswith(d + os.sep) for d in tmp_dirs)
    # interpreters/compilers that live in a temp dir (e.g. a venv there)
    reach_in_tmp = []
    for p in sorted({os.path.realpath(p) for p in cfg["reach"]}):  # parents first
        if under_tmp(p) and not any(_inside(p, q) for q in [work, *reach_in_tmp]) \
                and not _inside(work, p):
            reach_in_tmp.append(p)
    reach_fds = {p: _open_dir(p) for p in reach_in_tmp if os.path.isdir(p)}
    # One tmpfs holds all the program may write (work dir and temp dirs): its size and
    # inode count are the disk caps, and it lives in memory, never on the host's disk.
    _mount(libc, "tmpfs", cfg["scratch"], "tmpfs", MS_NOSUID | MS_NODEV,
           f"mode=0755,size={cfg['disk_mb']}m,nr_inodes={cfg['max_files']}")
    disk = _open_dir(cfg["scratch"])
    os.mkdir("work", 0o700, dir_fd=disk)
    space = _open_dir("work", dir_fd=disk)
    _copy_tree(host_work, space, cfg["uid"])
    if cfg["uid"] is not None:
        os.chown(space, cfg["uid"], cfg["uid"])
    for i, d in enumerate(tmp_dirs):
        os.mkdir(f"tmp{i}", dir_fd=disk)
        os.chmod(f"tmp{i}", 0o1777, dir_fd=disk)
        fd = _open_dir(f"tmp{i}", dir_fd=disk)
        _bind(libc, fd, d)
        os.close(fd)
    for p, fd in sorted(reach_fds.items()):
        _bind(libc, fd, p)
        os.close(fd)
    _bind(libc, space, work)
    os.close(disk)
    exposed = []
    if cfg["uid"] is not None:
        blocked: dict[str, set] = {}
        for p in cfg["reach"]:
            top = _blocked_parent(p, cfg["uid"]) if os.path.exists(p) else None
            if top:
                child = os.path.join(top, os.path.relpath(os.path.realpath(p), top).split(os.sep)[0])
                blocked.setdefault(top, set()).add(child)
        for top, children in blocked.items():
            _overmount(libc, [top], sorted(children), "0755", 1)
            exposed += sorted(children)
    left = _read_only_elsewhere(libc, [*tmp_dirs, work], reach_in_tmp)
    return {"private_tmp": tmp_dirs, "exposed": exposed, "read_only_fs": not left,
            "disk_cap": "tmpfs", **({"left_writable": left} if left else {})}, space


def _copy_tree(src: int, dst: int, uid: int | None) -> None:
    """Copy what is below the directory open as ``src`` into ``dst``: directories, regular
    files (holes kept), symlinks and hard links as such, nothing else; never through a
    link.  The copy takes no more bytes or inodes than the original, so a tmpfs's
    contents fit on the host, and a kept work dir back in a tmpfs of the same caps."""
    copied: dict[tuple[int, int], str] = {}  # hard-linked inodes -> their first copy
    pending = [""]
    while pending:
        rel = pending.pop()
        s, d = _open_dir(rel or ".", src), _open_dir(rel or ".", dst)
        try:
            for name in os.listdir(s):
                st = os.stat(name, dir_fd=s, follow_symlinks=False)
                path = os.path.join(rel, name)
                if stat.S_ISDIR(st.st_mode):
                    os.mkdir(name, 0o700, dir_fd=d)
                    pending.append(path)
                elif stat.S_ISLNK(st.st_mode):
                    os.symlink(os.readlink(name, dir_fd=s), name, dir_fd=d)
                elif not stat.S_ISREG(st.st_mode):
                    continue  # fifos, sockets: nothing a later run needs
                elif (st.st_dev, st.st_ino) in copied:
                    os.link(copied[st.st_dev, st.st_ino], path, src_dir_fd=dst, dst_dir_fd=dst,
                            follow_symlinks=False)
                    continue
                else:
                    _copy_file(name, s, d, st.st_size)
                    if st.st_nlink > 1:
                        copied[st.st_dev, st.st_ino] = path
                if uid is not None:
                    os.chown(name, uid, uid, dir_fd=d, follow_symlinks=False)
                if not stat.S_ISLNK(st.st_mode):
                    os.chmod(name, stat.S_IMODE(st.st_mode), dir_fd=d)
        finally:
            os.close(s)
            os.close(d)


def _copy_file(name: str, src: int, dst: int, size: int) -> None:
    """Copy one file's data regions (holes stay holes)."""
    fi = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=src)
    fo = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=dst)
    try:
        pos = 0
        while pos < size:
            try:
                start = os.lseek(fi, pos, os.SEEK_DATA)
            except OSError as e:
                if e.errno == errno.ENXIO:  # only a hole is left
                    break
                raise
            pos = os.lseek(fi, start, os.SEEK_HOLE)
            while start < pos:
                chunk = os.pread(fi, min(1 << 20, pos - start), start)
                if not chunk:
                    break
                start += os.pwrite(fo, chunk, start)
        os.ftruncate(fo, size)
    finally:
        os.close(fi)
        os.close(fo)


def _disk_use(space: int, cfg: dict) -> dict:
    """How much of the tmpfs the program used; ``full`` names the cap it reached."""
    fs = os.statvfs(space)
    full = "files" if fs.f_ffree == 0 else "bytes" if fs.f_bavail == 0 else None
    return {"bytes": (fs.f_blocks - fs.f_bfree) * fs.f_frsize, "files": fs.f_files - fs.f_ffree,
            "full": full}


def _keep(space: int, host_dir: int) -> None:
    """Copy the program's work dir out into ``kept`` in the caller's dir (the caller
    puts it in place of the old one)."""
    os.mkdir("kept", 0o700, dir_fd=host_dir)
    kept = _open_dir("kept", dir_fd=host_dir)
    try:
        _copy_tree(space, kept, None)
    finally:
        os.close(kept)


def _read_only_elsewhere(libc, writable: list[str], read_only: list[str]) -> list[str]:
    """Remount every mount read-only except ``writable`` (and below, unless under
    ``read_only``) and the kernel's, so a program cannot change the caller's files even
    where its uid could (a non-root caller's own uid, world-writable files).  Returns
    the mount points it could not remount."""
    def inside(path: str, tops) -> bool:
        return any(_inside(path, t) for t in tops)

    mounts = {}
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            # octal escapes (\040 for a space) in mount points
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
            mounts[point] = fields[5].split(",")  # the top one of stacked mounts counts
    left = []
    for point, options in mounts.items():
        if "ro" in options or inside(point, _KERNEL_FS) or (
                inside(point, writable) and not inside(point, read_only)):
            continue
        flags = sum(_MOUNT_OPTIONS.get(o, 0) for o in options)
        try:
            _mount(libc, None, point, None, MS_BIND | MS_REMOUNT | MS_RDONLY | flags)
        except OSError:
            left.append(point)
    return left


def _exec_program(libc, cfg: dict, err_w: int) -> None:
    """Limits, drop root, exec; a failure before the exec is written to ``err_w``."""
    import resource
    try:
        os.chdir(cfg["work_dir"])
        mb = 1 << 20
        limits = [(resource.RLIMIT_CPU, cfg["cpu_s"], cfg["cpu_s"] + 1),
                  (resource.RLIMIT_NPROC, cfg["max_processes"], cfg["max_processes"]),
                  (resource.RLIMIT_FSIZE, cfg["max_file_mb"] * mb, cfg["max_file_mb"] * mb),
                  (resource.RLIMIT_CORE, 0, 0)]
        if cfg["memory_mb"]:
            limits.append((resource.RLIMIT_AS, cfg["memory_mb"] * mb, cfg["memory_mb"] * mb))
        for which, soft, hard in limits:
            resource.setrlimit(which, (soft, hard))
        if cfg["uid"] is not None:
            os.setgroups([])
            os.setgid(cfg["uid"])
            os.setuid(cfg["uid"])
        libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)  # setuid binaries cannot give root back
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # after setuid, which clears it
        os.execve(cfg["exe"], cfg["argv"], cfg["env"])
    except BaseException as e:  # noqa: BLE001 - report anything, then leave
        os.write(err_w, f"{type(e).__name__}: {e}".encode()[:4000])
    os._exit(SETUP_FAILED)


def _init(libc, cfg: dict, iso: dict, err_w: int, exit_w: int) -> None:
    """PID 1 of the new PID namespace: runs the program as its child (so the program
    has normal signal semantics and a parent it cannot kill), reaps orphans, and
    reports the program's wait status on ``exit_w``.  Its exit kills the namespace."""
    if iso["mount"]:
        try:  # a /proc that shows only this sandbox's processes
            _mount(libc, "proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        except OSError:
            pass
    program = os.fork()
    if program == 0:
        os.close(exit_w)
        _exec_program(libc, cfg, err_w)
    os.close(err_w)
    while True:
        try:
            pid, wstatus = os.waitpid(-1, 0)
        except ChildProcessError:
            os._exit(SETUP_FAILED)
        if pid == program:
            os.write(exit_w, str(wstatus).encode())
            os._exit(0)


def _write_status(fd: int, status: dict) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(status).encode(), 0)


def _launch(cfg: dict) -> None:
    """Set up namespaces, fork the program (under an init), mirror its exit status."""
    import resource
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    libc = _libc()
    # opened before the mounts hide the caller's temp dir
    status_fd = os.open(cfg["status"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    # opened before the namespaces, so writes through them reach the caller's disk
    # (all else is read-only in there)
    host_dir, host_work = _open_dir(os.path.dirname(cfg["status"])), _open_dir(cfg["work_dir"])
    status = {"isolation": {"uid": cfg["uid"] if cfg["uid"] is not None else os.geteuid()}}
    space = None
    try:
        iso = _unshare(libc, os.geteuid() == 0)
        if iso["mount"]:
            mounts, space = _setup_mounts(libc, cfg, host_work)
            iso.update(mounts)
        else:
            iso.update({"private_tmp": [], "exposed": []})
        blocked = [p for p in cfg["reach"] if cfg["uid"] is not None and not iso["mount"]
                   and os.path.exists(p) and _blocked_parent(p, cfg["uid"])]
        if blocked:
            raise PermissionError(f"{blocked[0]} is out of reach of an unprivileged uid and "
                                  "no mount namespace is allowed to expose it")
    except OSError as e:  # without the mounts, a fresh uid may not even reach the interpreter
        status["setup_error"] = str(e)
        _write_status(status_fd, status)
        os._exit(SETUP_FAILED)
    # The launcher runs in a session of its own (the caller kills its group), so a kill of
    # the caller's group (kill -9 of the workflow) reaches it only by this signal; set after
    # the namespaces, whose new credentials clear it.
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != cfg["caller"]:  # the caller died before that
        os._exit(SETUP_FAILED)
    status["isolation"].update(iso)
    err_r, err_w = os.pipe()  # close-on-exec: EOF means the exec succeeded
    exit_r, exit_w = os.pipe()
    alive_r, alive_w = os.pipe()  # the launcher's end stays open while it lives
    pid = os.fork()
    if pid == 0:
        os.close(err_r)
        os.close(exit_r)
        os.close(alive_w)
        if iso["pid"]:
            # the namespace's init dies with the launcher, and the namespace with it
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            os.set_blocking(alive_r, False)
            try:
                if os.read(alive_r, 1) == b"":  # EOF: the launcher died before that
                    os._exit(SETUP_FAILED)
            except BlockingIOError:
                pass
            _init(libc, cfg, iso, err_w, exit_w)
        os.close(exit_w)
        _exec_program(libc, cfg, err_w)
    os.close(err_w)
    os.close(exit_w)
    os.close(alive_r)
    status["pid"] = pid
    _write_status(status_fd, status)
    err = os.read(err_r, 4096)
    if err:
        status["setup_error"] = err.decode(errors="replace")
        _write_status(status_fd, status)
    _, wstatus = os.waitpid(pid, 0)
    reported = os.read(exit_r, 64)
    wstatus = int(reported) if reported else wstatus
    status["exit"] = wstatus  # the program is done: copying out is not its time
    if space is not None:
        status["disk"] = _disk_use(space, cfg)
        _write_status(status_fd, status)
        if cfg["keep"]:
            try:
                _keep(space, host_dir)
                status["kept"] = True
            except OSError as e:
                status["keep_error"] = str(e)
    _write_status(status_fd, status)
    if os.WIFSIGNALED(wstatus):
        sig = os.WTERMSIG(wstatus)
        if sig not in (signal.SIGKILL, signal.SIGSTOP):  # those two cannot be caught anyway
            signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
        os._exit(128 + sig)
    os._exit(os.waitstatus_to_exitcode(wstatus))


if __name__ == "__main__" and sys.argv[1:2] == ["--launch"]:
    with open(sys.argv[2], encoding="utf-8") as config:
        _launch(json.load(config))
