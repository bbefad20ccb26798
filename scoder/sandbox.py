"""Run untrusted generated code in a throw-away sandbox.

Every program runs in a fresh temporary directory (its cwd, deleted afterwards)
under a small launcher process (this file run as a script, ``--launch``) which:

* unshares network, PID, mount, IPC and UTS namespaces where the OS allows it
  (as root directly; otherwise inside a new user namespace).  No network means
  even 127.0.0.1 is unreachable; in the PID namespace a tiny init (PID 1) is
  the program's parent, and everything the program forks dies with the run;
* in the mount namespace puts private tmpfs over /tmp, /var/tmp, /run/lock and
  /dev/shm (the world-writable places), so stray writes vanish with the run;
* when started as root, runs the program as a fresh unprivileged uid (one per
  run, no passwd entry), so it cannot touch root's files, signal the caller,
  or share its process budget with another sandbox.  Directories the
  interpreter lives under that the uid cannot enter (e.g. /root/.pyenv below a
  0700 /root) are made reachable with a tmpfs over the blocking parent and a
  bind mount of just the needed child (the rest of /root stays hidden);
* applies rlimits: CPU time, address space, processes, file size, no core files;
* gives the program a scrubbed environment (no inherited secrets).

The caller enforces a wall-clock timeout and kills the namespace's init and the
whole process group.  What was applied is reported in ``SandboxResult.isolation``.
Without root and without user namespaces it degrades to rlimits, a fresh cwd and
a scrubbed environment only, and then RLIMIT_NPROC counts all of the caller's
processes.  This is process-level isolation, not a VM: a kernel exploit is out
of scope.  Usage: ``run_python("print(1)").stdout``.
"""
from __future__ import annotations

import ctypes
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

# Kept as output, the rest is cut: head of stdout, tail of stderr (tracebacks end there).
MAX_STDOUT = 1 << 20
MAX_STDERR = 16 << 10
SETUP_FAILED = 126  # exit code of the launcher when the sandbox could not be set up
_UID_BASE, _UID_SPAN = 200_000, 100_000  # fresh uids, far from real accounts
_PRIVATE_TMP = ("/tmp", "/var/tmp", "/run/lock", "/dev/shm")


@dataclass
class SandboxResult:
    """Outcome of one sandboxed run; ``returncode`` < 0 means killed by that signal."""
    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool
    killed_reason: str | None
    wall_time: float
    isolation: dict = field(default_factory=dict)
    setup_error: str | None = None  # the sandbox itself failed: not the program's fault

    @property
    def passed(self) -> bool:
        return self.returncode == 0 and not self.timed_out


def run_python(code: str, *, timeout: float = 10.0, memory_mb: int | None = 1024,
               max_processes: int = 64, max_file_mb: int = 16, stdin: str | None = None,
               env: dict | None = None) -> SandboxResult:
    """Run ``code`` as ``main.py`` with this interpreter (``python -I``) in the sandbox."""
    # The same interpreter, so generated code sees the same installed libraries.
    reach = sorted({sys.base_prefix, sys.prefix, os.path.dirname(os.path.realpath(sys.executable))})
    return run_command([sys.executable, "-I", "main.py"], {"main.py": code}, timeout=timeout,
                       memory_mb=memory_mb, max_processes=max_processes,
                       max_file_mb=max_file_mb, stdin=stdin, env=env, reach=reach)


def run_command(argv: list[str], files: dict[str, str] | None = None, *, timeout: float = 10.0,
                memory_mb: int | None = 1024, max_processes: int = 64, max_file_mb: int = 16,
                stdin: str | None = None, env: dict | None = None,
                reach: list[str] | tuple[str, ...] = ()) -> SandboxResult:
    """Write ``files`` (relative path -> text) into a fresh cwd and run ``argv`` there.

    ``memory_mb`` caps the address space (None: no cap; JVM and Go reserve far more
    virtual memory than they use).  ``reach`` lists paths the unprivileged uid must be
    able to enter (compiler/interpreter prefixes); the resolved ``argv[0]`` is added.
    """
    start = time.monotonic()
    host_dir = tempfile.mkdtemp(prefix="scoder-sbx-io-")  # outputs + status, caller only
    work_dir = tempfile.mkdtemp(prefix="scoder-sbx-")
    try:
        uid = _fresh_uid() if os.geteuid() == 0 else None
        _write_files(work_dir, files or {}, uid)
        child_env = _scrubbed_env(work_dir, env)
        exe = shutil.which(argv[0], path=child_env["PATH"]) or argv[0]
        cfg = {"exe": exe, "argv": list(argv), "env": child_env, "work_dir": work_dir,
               "uid": uid, "status": os.path.join(host_dir, "status.json"),
               "reach": sorted({*reach, os.path.dirname(os.path.realpath(exe)), work_dir}),
               "cpu_s": math.ceil(timeout) + 1, "memory_mb": memory_mb,
               "max_processes": max_processes, "max_file_mb": max_file_mb}
        cfg_path, in_path, out_path, err_path = (
            os.path.join(host_dir, n) for n in ("config.json", "stdin", "stdout", "stderr"))
        with open(cfg_path, "w", encoding="utf-8") as f:
            json.dump(cfg, f)
        with open(in_path, "w", encoding="utf-8") as f:
            f.write(stdin or "")
        with open(in_path, "rb") as fin, open(out_path, "wb") as fout, open(err_path, "wb") as ferr:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-S", os.path.abspath(__file__), "--launch", cfg_path],
                stdin=fin, stdout=fout, stderr=ferr, cwd=work_dir, env={"PATH": os.defpath},
                start_new_session=True, close_fds=True)
        returncode, timed_out, status = _supervise(proc, cfg["status"], start + timeout)
        stdout = _read_capped(out_path, MAX_STDOUT, head=True)
        stderr = _read_capped(err_path, MAX_STDERR, head=False)
    finally:
        _rmtree(work_dir)
        _rmtree(host_dir)
    reason = _killed_reason(returncode, timed_out, timeout, status, stderr)
    return SandboxResult(returncode=None if timed_out else returncode, stdout=stdout,
                         stderr=stderr, timed_out=timed_out, killed_reason=reason,
                         wall_time=time.monotonic() - start,
                         isolation=status.get("isolation", {}),
                         setup_error=status.get("setup_error"))


# ----------------------------------------------------------------- caller side

def _fresh_uid() -> int:
    import pwd
    import random
    while True:
        uid = _UID_BASE + random.randrange(_UID_SPAN)
        try:
            pwd.getpwuid(uid)
        except KeyError:
            return uid


def _write_files(work_dir: str, files: dict[str, str], uid: int | None) -> None:
    for rel, text in files.items():
        path = os.path.normpath(os.path.join(work_dir, rel))
        if os.path.isabs(rel) or not path.startswith(work_dir + os.sep):
            raise ValueError(f"sandbox file path must stay inside the work dir: {rel!r}")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    if uid is not None:  # the program owns its work dir (compilers write next to sources)
        for root, dirs, names in os.walk(work_dir):
            for p in [root, *(os.path.join(root, n) for n in dirs + names)]:
                os.chown(p, uid, uid)


def _scrubbed_env(work_dir: str, extra: dict | None) -> dict:
    bin_dir = os.path.dirname(os.path.realpath(sys.executable))
    env = {"PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
           "LC_ALL": "C.UTF-8", "HOME": work_dir, "TMPDIR": work_dir, "PYTHONHASHSEED": "0",
           "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1",
           # one BLAS/OpenMP thread: thread pools reserve address space and count as processes
           "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env.update({str(k): str(v) for k, v in (extra or {}).items()})
    return env


def _supervise(proc: subprocess.Popen, status_path: str, deadline: float) -> tuple[int, bool, dict]:
    """Wait for the launcher until ``deadline``; then kill what is left of the run."""
    timed_out = True
    try:
        timed_out = not _wait_unreaped(proc.pid, deadline)
        pid = _read_status(status_path).get("pid")
        if timed_out and pid:
            _kill(os.kill, pid)  # the namespace's init: takes every process in it along
            # the launcher returns once the kernel has reaped the whole namespace
            _wait_unreaped(proc.pid, time.monotonic() + 2.0)
    finally:  # also on KeyboardInterrupt: never leave a run behind
        _kill(os.killpg, proc.pid)  # whatever is left in the group (e.g. background children)
        returncode = proc.wait()
    return returncode, timed_out, _read_status(status_path)


def _wait_unreaped(pid: int, deadline: float) -> bool:
    """Wait for the launcher to exit without reaping it, so its pid (= the process
    group id) stays valid for the group kill; False when the deadline passed."""
    delay = 0.001
    while True:
        if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT | os.WNOHANG) is not None:
            return True
        now = time.monotonic()
        if now >= deadline:
            return False
        time.sleep(min(delay, deadline - now))
        delay = min(delay * 2, 0.02)


def _kill(killer, pid: int) -> None:
    try:
        killer(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _read_status(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _read_capped(path: str, limit: int, head: bool) -> str:
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        if size > limit and not head:
            f.seek(size - limit)
        data = f.read(limit)
    text = data.decode("utf-8", errors="replace")
    if size > limit:
        note = f"[... {size - limit} bytes cut ...]"
        text = text + "\n" + note if head else note + "\n" + text
    return text


def _killed_reason(rc: int, timed_out: bool, timeout: float, status: dict, stderr: str) -> str | None:
    if status.get("setup_error"):
        return f"sandbox setup failed: {status['setup_error']}"
    if timed_out:
        return f"timeout after {timeout:g}s wall clock"
    if rc < 0:
        sig = -rc
        named = {signal.SIGXCPU: "cpu time limit", signal.SIGXFSZ: "file size limit",
                 signal.SIGKILL: "killed (SIGKILL)"}
        return named.get(sig) or f"signal {signal.Signals(sig).name}"
    if rc != 0 and "MemoryError" in stderr:
        return "memory limit (MemoryError)"
    if rc != 0 and "File too large" in stderr:  # Python ignores SIGXFSZ and raises instead
        return "file size limit (EFBIG)"
    return None


def _rmtree(path: str) -> None:
    def retry(func, p, _exc):  # a program may leave unreadable dirs behind; as owner we may chmod
        try:
            os.chmod(os.path.dirname(p), 0o700)
            os.chmod(p, 0o700)
            func(p)
        except OSError:
            pass
    shutil.rmtree(path, onerror=retry)


# ----------------------------------------------------------------- launcher side

CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWNS = 0x04000000, 0x08000000, 0x00020000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_BIND, MS_REC, MS_PRIVATE = 2, 4, 8, 4096, 16384, 1 << 18
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


def _blocked_parent(path: str, uid: int) -> str | None:
    """The outermost directory above ``path`` that ``uid`` cannot traverse."""
    parts = os.path.realpath(path).split(os.sep)[1:]
    for i in range(1, len(parts)):
        d = os.sep + os.path.join(*parts[:i])
        st = os.stat(d)
        if not (st.st_mode & 0o001 or (st.st_uid == uid and st.st_mode & 0o100)):
            return d
    return None


def _overmount(libc, dirs: list[str], keep: list[str], mode: str, size_mb: int) -> None:
    """Put an empty tmpfs over each of ``dirs``, then bind ``keep`` paths back into it."""
    fds = {p: os.open(p, os.O_RDONLY | os.O_DIRECTORY) for p in keep if os.path.isdir(p)}
    for d in dirs:
        _mount(libc, "tmpfs", d, "tmpfs", MS_NOSUID | MS_NODEV, f"mode={mode},size={size_mb}m")
    for p, fd in sorted(fds.items()):
        os.makedirs(p, exist_ok=True)
        _mount(libc, f"/proc/self/fd/{fd}", p, None, MS_BIND | MS_REC)
        os.close(fd)


def _setup_mounts(libc, cfg: dict) -> dict:
    _mount(libc, None, "/", None, MS_REC | MS_PRIVATE)  # nothing we mount leaks to the host
    work = os.path.realpath(cfg["work_dir"])
    tmp_dirs = [d for d in _PRIVATE_TMP if os.path.isdir(d) and not os.path.islink(d)]
    under_tmp = [work] if any(work.startswith(d + os.sep) for d in tmp_dirs) else []
    _overmount(libc, tmp_dirs, under_tmp, "1777", max(64, 4 * cfg["max_file_mb"]))
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
    return {"private_tmp": tmp_dirs, "exposed": exposed}


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
    status = {"isolation": {"uid": cfg["uid"] if cfg["uid"] is not None else os.geteuid()}}
    try:
        iso = _unshare(libc, os.geteuid() == 0)
        iso.update(_setup_mounts(libc, cfg) if iso["mount"] else {"private_tmp": [], "exposed": []})
        blocked = [p for p in cfg["reach"] if cfg["uid"] is not None and not iso["mount"]
                   and os.path.exists(p) and _blocked_parent(p, cfg["uid"])]
        if blocked:
            raise PermissionError(f"{blocked[0]} is out of reach of an unprivileged uid and "
                                  "no mount namespace is allowed to expose it")
    except OSError as e:  # without the mounts, a fresh uid may not even reach the interpreter
        status["setup_error"] = str(e)
        _write_status(status_fd, status)
        os._exit(SETUP_FAILED)
    status["isolation"].update(iso)
    err_r, err_w = os.pipe()  # close-on-exec: EOF means the exec succeeded
    exit_r, exit_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(err_r)
        os.close(exit_r)
        if iso["pid"]:
            _init(libc, cfg, iso, err_w, exit_w)
        os.close(exit_w)
        _exec_program(libc, cfg, err_w)
    os.close(err_w)
    os.close(exit_w)
    status["pid"] = pid
    _write_status(status_fd, status)
    err = os.read(err_r, 4096)
    if err:
        status["setup_error"] = err.decode(errors="replace")
        _write_status(status_fd, status)
    _, wstatus = os.waitpid(pid, 0)
    reported = os.read(exit_r, 64)
    wstatus = int(reported) if reported else wstatus
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
