"""Run untrusted generated code in a throw-away sandbox.

Every program runs in a fresh temporary directory (its cwd, deleted afterwards)
under a small launcher process (``scoder/sandbox_launch.py`` run as a script) which:

* unshares network, PID, mount, IPC and UTS namespaces where the OS allows it
  (as root directly; otherwise inside a new user namespace).  No network means
  even 127.0.0.1 is unreachable; in the PID namespace a tiny init (PID 1) is
  the program's parent, and everything the program forks dies with the run;
* in the mount namespace puts one tmpfs of ``disk_mb`` MiB and ``max_files`` inodes
  under the work dir and over /tmp, /var/tmp, /run/lock and /dev/shm (the
  world-writable places): all the program may write lives in memory, within those
  caps, and vanishes with the run.  The work dir's files are copied in first; a kept
  work dir gets the program's files copied back out (holes and hard links kept, so
  no more than the caps reach the host's disk).  Every other mount is remounted
  read-only (but /proc, /sys, /dev), so the caller's files survive even where the
  program's uid could write;
* when started as root, runs the program as a fresh unprivileged uid (one per
  run, no passwd entry), so it cannot touch root's files, signal the caller,
  or share its process budget with another sandbox.  Directories the
  interpreter lives under that the uid cannot enter (e.g. /root/.pyenv below a
  0700 /root) are made reachable with a tmpfs over the blocking parent and a
  bind mount of just the needed child (the rest of /root stays hidden);
* applies rlimits: CPU time, address space, processes, file size, no core files;
* gives the program a scrubbed environment (no inherited secrets, no visible GPU).

The caller enforces a wall-clock timeout and kills the namespace's init and the
whole process group.  If the caller itself is killed (kill -9 of the workflow), the
launcher and the namespace's init die with it (parent-death signals), and so does
everything in the namespace.  What was applied is reported in ``SandboxResult.isolation``.
Without root and without user namespaces it degrades to rlimits, a fresh cwd and
a scrubbed environment only, and then RLIMIT_NPROC counts all of the caller's
processes; the disk caps then hold for the work dir only, watched by the caller
every 0.1 s (the program is killed once over them: it may overshoot by what it
writes in that time, and writes elsewhere, e.g. the host's /tmp, are not capped).
A program that reaches a disk cap fails with the reason ``disk space limit`` or
``file count limit``.  This is process-level isolation, not a VM: a kernel exploit
is out of scope.  Usage: ``run_python("print(1)").stdout``; other languages: ``scoder.execution``.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

# Kept as output, the rest is cut: head of stdout, tail of stderr (tracebacks end there).
MAX_STDOUT = 1 << 20
MAX_STDERR = 16 << 10
# What the program may write in all (work dir and temp dirs): held in memory (tmpfs).
DISK_MB = 512
MAX_FILES = 10_000  # files, directories and links
_WATCH_EVERY = 0.1  # seconds between looks at the work dir where no tmpfs caps it
_KEEP_GRACE = 30.0  # seconds to copy a kept work dir out after the program ended in time
_UID_BASE, _UID_SPAN = 200_000, 100_000  # fresh uids, far from real accounts
_LAUNCHER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sandbox_launch.py")
# the program's PATH: this interpreter's bin dir first, then the system's
SANDBOX_PATH = f"{os.path.dirname(os.path.realpath(sys.executable))}:/usr/local/bin:/usr/bin:/bin"


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
        return self.returncode == 0 and not self.timed_out and self.killed_reason is None


def run_python(code: str, *, timeout: float = 10.0, memory_mb: int | None = 1024,
               max_processes: int = 64, max_file_mb: int = 16, disk_mb: int = DISK_MB,
               max_files: int = MAX_FILES, stdin: str | None = None,
               env: dict | None = None) -> SandboxResult:
    """Run ``code`` as ``main.py`` with this interpreter (``python -I``) in the sandbox."""
    # The same interpreter, so generated code sees the same installed libraries.
    reach = sorted({sys.base_prefix, sys.prefix, os.path.dirname(os.path.realpath(sys.executable))})
    return run_command([sys.executable, "-I", "main.py"], {"main.py": code}, timeout=timeout,
                       memory_mb=memory_mb, max_processes=max_processes,
                       max_file_mb=max_file_mb, disk_mb=disk_mb, max_files=max_files,
                       stdin=stdin, env=env, reach=reach)


def run_command(argv: list[str], files: dict[str, str] | None = None, *, timeout: float = 10.0,
                memory_mb: int | None = 1024, max_processes: int = 64, max_file_mb: int = 16,
                disk_mb: int = DISK_MB, max_files: int = MAX_FILES,
                stdin: str | None = None, env: dict | None = None,
                reach: list[str] | tuple[str, ...] = (),
                work_dir: str | None = None, keep_writes: bool = True) -> SandboxResult:
    """Write ``files`` (relative path -> text) into a fresh cwd and run ``argv`` there.

    ``memory_mb`` caps the address space (None: no cap; JVM and Go reserve far more
    virtual memory than they use).  ``max_file_mb`` caps each file, ``disk_mb`` and
    ``max_files`` all the program writes (in memory: count it with ``memory_mb``).
    ``reach`` lists paths the unprivileged uid must be able to enter
    (compiler/interpreter prefixes); the resolved ``argv[0]`` is added.
    ``work_dir``: an existing directory (from ``new_work_dir``) to run in instead,
    kept afterwards so a later run sees its files (a compile step, then the program);
    ``keep_writes=False``: what this run writes there is dropped (the next run sees the
    directory as it was, and nothing is copied out; not so without a mount namespace).
    """
    start = time.monotonic()
    host_dir = tempfile.mkdtemp(prefix="scoder-sbx-io-")  # outputs + status, caller only
    keep = work_dir is not None
    work_dir = os.path.realpath(work_dir) if keep else new_work_dir()
    try:
        uid = _fresh_uid() if os.geteuid() == 0 else None
        _write_files(work_dir, files or {}, uid)
        child_env = _scrubbed_env(work_dir, env)
        exe = shutil.which(argv[0], path=child_env["PATH"]) or argv[0]
        cfg = {"exe": exe, "argv": list(argv), "env": child_env, "work_dir": work_dir, "caller": os.getpid(),
               "uid": uid, "status": os.path.join(host_dir, "status.json"),
               "reach": sorted({*reach, os.path.dirname(os.path.realpath(exe)), work_dir}),
               "cpu_s": math.ceil(timeout) + 1, "memory_mb": memory_mb,
               "max_processes": max_processes, "max_file_mb": max_file_mb,
               "disk_mb": disk_mb, "max_files": max_files, "keep": keep and keep_writes,
               "scratch": os.path.join(host_dir, "disk")}
        os.mkdir(cfg["scratch"])
        cfg_path, in_path, out_path, err_path = (
            os.path.join(host_dir, n) for n in ("config.json", "stdin", "stdout", "stderr"))
        with open(cfg_path, "w", encoding="utf-8") as f:
            json.dump(cfg, f)
        with open(in_path, "w", encoding="utf-8") as f:
            f.write(stdin or "")
        with open(in_path, "rb") as fin, open(out_path, "wb") as fout, open(err_path, "wb") as ferr:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-S", _LAUNCHER, "--launch", cfg_path],
                stdin=fin, stdout=fout, stderr=ferr, cwd=work_dir, env={"PATH": os.defpath},
                start_new_session=True, close_fds=True)
        def watch() -> str | None:  # the disk caps, where no tmpfs holds them
            isolation = _read_status(cfg["status"]).get("isolation", {})
            if "net" not in isolation or isolation.get("disk_cap") == "tmpfs":
                return None
            return _over_disk_cap(work_dir, disk_mb, max_files)
        returncode, timed_out, status, over = _supervise(proc, cfg["status"], start + timeout,
                                                         watch)
        stdout = _read_capped(out_path, MAX_STDOUT, head=True)
        stderr = _read_capped(err_path, MAX_STDERR, head=False)
        if keep and status.get("kept"):  # the program's files, copied out of its tmpfs
            _rmtree(work_dir)
            os.rename(os.path.join(host_dir, "kept"), work_dir)
    finally:
        if not keep:
            _rmtree(work_dir)
        _rmtree(host_dir)
    if "net" in status.get("isolation", {}):
        status["isolation"].setdefault("disk_cap", "work dir watched")
    reason = over or _killed_reason(returncode, timed_out, timeout, status, stderr,
                                    disk_mb, max_files)
    return SandboxResult(returncode=None if timed_out else returncode, stdout=stdout,
                         stderr=stderr, timed_out=timed_out, killed_reason=reason,
                         wall_time=time.monotonic() - start,
                         isolation=status.get("isolation", {}),
                         setup_error=status.get("setup_error"))


def new_work_dir() -> str:
    """A fresh private directory for ``run_command(work_dir=...)``; delete it with
    ``remove_work_dir`` (a program may have left unreadable files in it)."""
    return tempfile.mkdtemp(prefix="scoder-sbx-")


def remove_work_dir(path: str) -> None:
    """Delete a work dir made by ``new_work_dir``, whatever the program left in it."""
    _rmtree(path)


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
        # a reused work dir may hold links planted by an earlier run: never write through one
        parent = os.path.realpath(os.path.dirname(path))
        if parent != work_dir and not parent.startswith(work_dir + os.sep):
            raise ValueError(f"sandbox file path leaves the work dir through a link: {rel!r}")
        os.makedirs(parent, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
        with open(fd, "w", encoding="utf-8") as f:
            f.write(text)
    if uid is not None:  # the program owns its work dir (compilers write next to sources)
        for root, dirs, names in os.walk(work_dir):
            for p in [root, *(os.path.join(root, n) for n in dirs + names)]:
                st = os.lstat(p)
                # not through symlinks, nor hard links an earlier run made to outside files
                if stat.S_ISDIR(st.st_mode) or (stat.S_ISREG(st.st_mode) and st.st_nlink == 1):
                    os.chown(p, uid, uid, follow_symlinks=False)


def _scrubbed_env(work_dir: str, extra: dict | None) -> dict:
    env = {"PATH": SANDBOX_PATH, "LANG": "C.UTF-8",
           "LC_ALL": "C.UTF-8", "HOME": work_dir, "TMPDIR": work_dir, "PYTHONHASHSEED": "0",
           "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1",
           # one BLAS/OpenMP thread: thread pools reserve address space and count as processes
           "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           # no GPU: a test that imports torch or TensorFlow (BigCodeBench has such tasks) must not
           # take memory from the model the job holds on it (TensorFlow would take it all)
           "CUDA_VISIBLE_DEVICES": "", "HIP_VISIBLE_DEVICES": ""}
    env.update({str(k): str(v) for k, v in (extra or {}).items()})
    return env


def _supervise(proc: subprocess.Popen, status_path: str, deadline: float,
               watch) -> tuple[int, bool, dict, str | None]:
    """Wait for the launcher until ``deadline`` (or until ``watch()`` names a cap the
    run is over); then kill what is left of the run."""
    exited, over, grace = False, None, True
    try:
        while not exited and over is None:
            exited = _wait_unreaped(proc.pid, min(deadline, time.monotonic() + _WATCH_EVERY))
            if not exited and time.monotonic() >= deadline:
                if not (grace and "exit" in _read_status(status_path)):
                    break  # out of time
                deadline, grace = deadline + _KEEP_GRACE, False  # ended in time; being kept
            over = None if exited else watch()
        pid = _read_status(status_path).get("pid")
        if not exited and pid:
            _kill(os.kill, pid)  # the namespace's init: takes every process in it along
            # the launcher returns once the kernel has reaped the whole namespace
            _wait_unreaped(proc.pid, time.monotonic() + 2.0)
    finally:  # also on KeyboardInterrupt: never leave a run behind
        _kill(os.killpg, proc.pid)  # whatever is left in the group (e.g. background children)
        returncode = proc.wait()
    return returncode, not exited and over is None, _read_status(status_path), over or watch()


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


def _over_disk_cap(top: str, disk_mb: int, max_files: int) -> str | None:
    """The disk cap the tree at ``top`` is over, else None (stops counting there)."""
    used = files = 0
    linked = set()  # a hard-linked file's blocks count once
    pending = [top]
    while pending:
        try:
            entries = os.scandir(pending.pop())
        except OSError:
            continue
        with entries:
            for entry in entries:
                try:
                    st = entry.stat(follow_symlinks=False)
                    if st.st_ino not in linked:
                        used += st.st_blocks * 512
                    if stat.S_ISDIR(st.st_mode):
                        pending.append(entry.path)
                    elif st.st_nlink > 1:
                        linked.add(st.st_ino)
                except OSError:
                    pass
                files += 1
                if files > max_files:
                    return _FILES_REASON.format(max_files)
                if used > disk_mb << 20:
                    return _DISK_REASON.format(disk_mb)
    return None


_DISK_REASON = "disk space limit ({} MiB)"
_FILES_REASON = "file count limit ({} files)"


def _killed_reason(rc: int, timed_out: bool, timeout: float, status: dict, stderr: str,
                   disk_mb: int, max_files: int) -> str | None:
    if status.get("setup_error"):
        return f"sandbox setup failed: {status['setup_error']}"
    if timed_out:
        return f"timeout after {timeout:g}s wall clock"
    full = status.get("disk", {}).get("full")
    if full:  # failed or not, the program reached its cap
        return _FILES_REASON.format(max_files) if full == "files" else _DISK_REASON.format(disk_mb)
    if status.get("keep_error"):
        return f"work dir not kept: {status['keep_error']}"
    if rc < 0:
        sig = -rc
        named = {signal.SIGXCPU: "cpu time limit", signal.SIGXFSZ: "file size limit",
                 signal.SIGKILL: "killed (SIGKILL)"}
        return named.get(sig) or f"signal {signal.Signals(sig).name}"
    if rc != 0 and "MemoryError" in stderr:
        return "memory limit (MemoryError)"
    if rc != 0 and "File too large" in stderr:  # Python ignores SIGXFSZ and raises instead
        return "file size limit (EFBIG)"
    if rc != 0 and "No space left on device" in stderr:  # reached a cap, then freed some
        return f"{_DISK_REASON.format(disk_mb)} or {_FILES_REASON.format(max_files)}"
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
