"""Process-tree helpers for tests that kill things (Linux /proc): what a kill left behind."""
import contextlib
import ctypes
import os
import signal
import time
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36


def _processes() -> dict[int, tuple[int, str, str]]:
    """{pid: (parent pid, state, command line)} of every process."""
    out = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # the name may hold spaces
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        out[int(stat.parent.name)] = (int(fields[1]), fields[0], cmdline.strip())
    return out


def descendants(pid: int) -> dict[int, str]:
    """{pid: command line} of every live descendant of ``pid``."""
    procs, found, todo = _processes(), {}, [pid]
    while todo:
        parent = todo.pop()
        for child, (ppid, state, cmdline) in procs.items():
            if ppid == parent and child not in found and state != "Z":
                found[child] = cmdline
                todo.append(child)
    return found


def running(pid: int) -> bool:
    """Whether ``pid`` is alive (a zombie is not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@contextlib.contextmanager
def subreaper():
    """Orphans of everything this process starts are re-parented to it (not to init), so a
    process a kill left behind can be found: ``left_behind()``."""
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    try:
        yield
    finally:
        libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
        left_behind(set(), wait=0)  # reap


def left_behind(keep: set[int], wait: float = 10) -> list[str]:
    """Command lines of this process's live children besides ``keep``, after up to ``wait`` s
    for killed ones to die; dead ones are reaped and live ones killed (nothing outlives a test)."""
    deadline = time.time() + wait
    while True:
        alive = {}
        for pid, (ppid, state, cmdline) in _processes().items():
            if ppid != os.getpid() or pid in keep:
                continue
            if state == "Z":
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)
            else:
                alive[pid] = cmdline
        if not alive or time.time() >= deadline:
            for pid in alive:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            return list(alive.values())
        time.sleep(0.2)
