"""The sandbox contains hostile programs and reports them as failures, while the caller carries on."""
import os
import signal
import textwrap

import pytest

from scoder.sandbox import run_command, run_python


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
    if r.isolation.get("uid"):
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


def test_files_outside_the_work_dir_are_safe(tmp_path):
    marker = f"/tmp/scoder-sandbox-marker-{os.getpid()}"
    victim_dir = tmp_path / "victim"
    victim_dir.mkdir(mode=0o755)
    victim = victim_dir / "keep.txt"
    victim.write_text("precious")
    victim.chmod(0o644)
    code = textwrap.dedent(f"""
        import os
        print(os.getcwd())
        open("scratch.txt", "w").write("ok")  # its own cwd is writable
        open({marker!r}, "w").write("escaped")
        try:
            os.remove({str(victim)!r})
        except OSError as e:
            print("remove failed:", type(e).__name__)
    """)
    r = run_python(code)
    assert not os.path.exists(marker)  # private /tmp, gone with the run
    assert victim.read_text() == "precious"
    cwd = r.stdout.splitlines()[0]
    assert "scoder-sbx-" in cwd and not os.path.exists(cwd)  # fresh temp dir, deleted


def test_network_is_unreachable():
    code = "import socket\nsocket.create_connection(('127.0.0.1', 22), timeout=2)\nprint('connected')"
    r = run_python(code, timeout=8)
    if not r.isolation.get("net"):
        pytest.skip(f"no network namespace on this machine: {r.isolation}")
    assert not r.passed and "connected" not in r.stdout
    assert "unreachable" in r.stderr or "OSError" in r.stderr


def test_environment_secrets_are_not_inherited(monkeypatch):
    monkeypatch.setenv("SECRET_TOKEN", "hunter2")
    r = run_python("import os\nprint(os.environ.get('SECRET_TOKEN'))\nprint(open('/proc/self/environ').read())",
                   env={"VISIBLE": "yes"})
    assert r.passed and "hunter2" not in r.stdout and "VISIBLE=yes" in r.stdout
    assert r.stdout.splitlines()[0] == "None"


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
