"""LiveCodeBench code generation (Full and Easy) from local files, loaded as lcb_runner does.

Data (``evaluation.livecodebench.path``): the public dataset
``livecodebench/code_generation_lite`` as downloaded, a folder of one JSONL file per
release (``test.jsonl``, ``test2.jsonl``, ... ``test6.jsonl``), or one JSONL/parquet
file with the same columns.  ``release`` is lcb_runner's ``--release_version`` and
picks the files as the dataset's loading script does: ``release_vN`` = ``test.jsonl``
.. ``testN.jsonl`` (every problem up to release N: v4 = May 2023 - Sep 2024, v5 adds
Oct 2024 - Jan 2025), ``vN`` = ``testN.jsonl`` alone, ``vA_vB`` = releases A..B,
``release_latest`` = every ``test*.jsonl`` in the folder.  Columns: ``question_title``,
``question_content``, ``platform``, ``question_id``, ``contest_id``, ``contest_date``
(ISO date-time), ``starter_code``, ``difficulty`` (easy/medium/hard),
``public_test_cases`` and ``private_test_cases`` (JSON text of ``[{"input", "output",
"testtype": "stdin"|"functional"}]``; the private ones as released are
base64(zlib(pickle(JSON text)))), ``metadata`` (JSON text, ``{"func_name": ...}`` for
functional problems).  ``start_date``/``end_date`` (YYYY-MM-DD) keep the problems with
``start <= contest_date <= end`` compared as date-times, as lcb_runner's
``load_code_generation_dataset`` (so ``end_date`` is that day's midnight); problems
are then ordered by ``question_id`` as its runner does, and ``limit`` takes the first.
``count_problems`` says how many problems a window holds without decoding any test
(a pre-run check).  Full = every problem, Easy = those with difficulty easy.

Prompts are lcb_runner's: instruct models get its generic system message and
question template (starter code, or stdin/stdout instructions) and the answer's
last code block is tested; base models get its one-shot base prompt, whose
example comes from LiveCodeBench's own ``few_shot_examples/generation`` folder
(``few_shot_dir``).  Grading follows lcb_runner's testing_util: its import
preamble is prepended, functional tests call ``Solution().<func_name>(*args)`` on
JSON arguments (one per input line) and compare with the JSON output (tuples as
lists), stdin tests compare stripped output lines exactly or as Decimals; every
test has ``timeout`` seconds (lcb default 6).  Simpler than lcb_runner: a
program reads the real stdin of a forked process instead of a mocked one, and
all tests of one sample run in one sandbox process.
"""
from __future__ import annotations

import base64
import io
import json
import mmap
import pickle
import re
import zlib
from datetime import datetime
from pathlib import Path


from .common import (harness_verdict, GenerationCache, Protocol, Task, Unavailable, code_block, generate, read_records,
                     short, summarize)

RELEASE = re.compile(r"release_v(\d+)|release_latest|v(\d+)(?:_v(\d+))?")
SYSTEM_MESSAGE = ("You are an expert Python programmer. You will be given a question (problem "
                  "specification) and will generate a correct Python program that matches the "
                  "specification and passes all tests.")
WITH_STARTER = ("You will use the following starter code to write the solution to the problem and "
                "enclose your code within delimiters.")
WITHOUT_STARTER = ("Read the inputs from stdin solve the problem and write the answer to stdout (do not "
                   "directly test on the sample inputs). Enclose your code within delimiters as follows. "
                   "Ensure that when the python program runs, it reads the inputs, runs the algorithm and "
                   "writes output to STDOUT.")


# ------------------------------------------------------------------ data

def _release_file(i: int) -> str:
    return "test.jsonl" if i == 1 else f"test{i}.jsonl"


def release_files(release: str, folder: str | Path | None = None) -> list[str]:
    """The file names of a release tag, as code_generation_lite's loading script maps
    them (``release_latest``: every ``test*.jsonl`` in ``folder``)."""
    m = RELEASE.fullmatch(str(release))
    if not m:
        raise ValueError(f"evaluation.livecodebench.release: {release!r} is not a LiveCodeBench version tag "
                         "(release_v1 .. release_v6, release_latest, v1 .. v6, or vA_vB such as v5_v6)")
    if release == "release_latest":
        numbers = sorted(int(f.name[4:-6] or 1) for f in Path(folder or ".").glob("test*.jsonl")
                         if re.fullmatch(r"test\d*\.jsonl", f.name))
        return [_release_file(i) for i in numbers] or ["test.jsonl"]
    first, last = (1, int(m[1])) if m[1] else (int(m[2]), int(m[3] or m[2]))
    if not 1 <= first <= last:
        raise ValueError(f"evaluation.livecodebench.release: {release!r} names no release")
    return [_release_file(i) for i in range(first, last + 1)]


def data_files(settings: dict) -> tuple[list[Path], str]:
    """The files the configured release reads and a description of them;
    ``Unavailable`` naming the first missing one."""
    path = settings.get("path")
    if not path:
        raise Unavailable("no LiveCodeBench data configured")
    path = Path(path)
    release = settings.get("release", "release_v4")
    if path.is_dir():
        names = release_files(release, path)
        missing = [name for name in names if not (path / name).is_file()]
        if missing:
            raise Unavailable(f"no local data at {path / missing[0]} (release {release} reads "
                              f"{', '.join(names)} in {path})")
        return [path / name for name in names], f"{path} (LiveCodeBench {release}: {', '.join(names)}"
    if path.exists():
        return [path], f"{path} (LiveCodeBench"
    raise Unavailable(f"no local data at {path}")


def _bound(settings: dict, key: str) -> datetime | None:
    value = settings.get(key)
    if value in (None, ""):
        return None
    try:
        return datetime.strptime(str(value), "%Y-%m-%d")
    except ValueError:
        raise ValueError(f"evaluation.livecodebench.{key}: {value!r} is not a YYYY-MM-DD date") from None


def _in_window(contest_date: str, start: datetime | None, end: datetime | None, where) -> bool:
    try:
        when = datetime.fromisoformat(str(contest_date))
    except ValueError:
        raise ValueError(f"{where}: contest_date {contest_date!r} is not an ISO date") from None
    return (start is None or start <= when) and (end is None or when <= end)


def _window(settings: dict, source: str) -> tuple[datetime | None, datetime | None, str]:
    start, end = _bound(settings, "start_date"), _bound(settings, "end_date")
    window = (f", {settings.get('start_date') or '…'} to {settings.get('end_date') or '…'}"
              if start or end else "")
    return start, end, f"{source}{window})"


_DATE_KEY = b'"contest_date"'
_DATE_VALUE = re.compile(rb'\s*:\s*"([^"]*)"')


def _contest_dates(path: Path):
    """Each row's ``contest_date`` without parsing the rows: in a JSONL file an unescaped
    ``"contest_date"`` followed by ``:`` can only be that key (a quote inside a JSON
    string is escaped), so the released multi-GB files are scanned in seconds."""
    if not path.name.endswith(".jsonl") or path.stat().st_size == 0:
        yield from (str(r.get("contest_date", "")) for r in read_records(path))
        return
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        at = data.find(_DATE_KEY)
        while at >= 0:
            m = _DATE_VALUE.match(data, at + len(_DATE_KEY))
            if m:
                yield m.group(1).decode()
            at = data.find(_DATE_KEY, at + len(_DATE_KEY))


def count_problems(settings: dict) -> int:
    """How many problems the configured release and date window hold (``limit`` applied),
    read without decoding a test; ``Unavailable`` when a release file is missing."""
    files, source = data_files(settings)
    start, end, _ = _window(settings, source)
    n = sum(_in_window(d, start, end, f) for f in files for d in _contest_dates(f))
    limit = settings.get("limit")
    return n if limit is None else min(n, limit)


def load_problems(settings: dict) -> tuple[list[dict], str]:
    """Problems (tests decoded) of the configured release and date window in
    ``question_id`` order, and their source."""
    files, source = data_files(settings)
    start, end, source = _window(settings, source)
    rows = [r for f in files for r in read_records(f) if _in_window(r.get("contest_date", ""), start, end, f)]
    rows = sorted(rows, key=lambda r: str(r["question_id"]))[:settings.get("limit")]
    return [decode_problem(r) for r in rows], source


def question_texts(settings: dict) -> list[tuple[str, str]]:
    """``(question_id, question + starter code)`` of every problem of the release (no date
    window, tests not decoded), rows read one at a time: for decontamination."""
    from scoder.io import iter_jsonl

    files, _ = data_files(settings)
    rows = (r for f in files for r in (iter_jsonl(f) if f.name.endswith(".jsonl") else read_records(f)))
    return [(str(r["question_id"]), f"{r['question_content']}\n{r.get('starter_code') or ''}".strip())
            for r in rows]


def decode_problem(row: dict) -> dict:
    """One dataset row with its test lists and metadata parsed."""
    def tests(value):
        if isinstance(value, list):
            return value
        try:
            return json.loads(value)
        except (json.JSONDecodeError, TypeError):
            return json.loads(_SafeUnpickler(io.BytesIO(zlib.decompress(base64.b64decode(value)))).load())

    metadata = row.get("metadata") or "{}"
    problem = dict(row)
    problem.update(public_test_cases=tests(row["public_test_cases"]),
                   private_test_cases=tests(row.get("private_test_cases") or "[]"),
                   metadata=json.loads(metadata) if isinstance(metadata, str) else dict(metadata),
                   contest_date=str(row.get("contest_date", "")),
                   starter_code=row.get("starter_code") or "")
    return problem


class _SafeUnpickler(pickle.Unpickler):
    """The released private tests are a pickled JSON string: refuse anything but plain data."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from LiveCodeBench test data")


# ------------------------------------------------------------------ prompts

def question_prompt(problem: dict) -> str:
    """lcb_runner's generic question template."""
    prompt = f"### Question:\n{problem['question_content']}\n\n"
    if problem["starter_code"]:
        prompt += f"### Format: {WITH_STARTER}\n```python\n{problem['starter_code']}\n```\n\n"
    else:
        prompt += f"### Format: {WITHOUT_STARTER}\n```python\n# YOUR CODE HERE\n```\n\n"
    return prompt + "### Answer: (use the provided format with backticks)\n\n"


def base_prompt(problem: dict, few_shot_dir: str | None) -> str:
    """lcb_runner's base-model prompt: one solved example of the same kind, then the question."""
    if not few_shot_dir:
        raise Unavailable("base-model prompts need LiveCodeBench's few-shot examples: set "
                          "evaluation.livecodebench.few_shot_dir to lcb_runner/prompts/few_shot_examples/generation")
    kind = "func.json" if problem["starter_code"] else "stdin.json"
    example = json.loads((Path(few_shot_dir) / kind).read_text(encoding="utf-8"))[0]

    def block(question, starter, answer):
        text = f"### Question\n{question}\n\n"
        if problem["starter_code"]:
            text += f"### Starter Code\n{starter}\n\n"
        return text + "### Answer\n\n" + (f"{answer}\n\n" if answer else "")

    return (block(example["question"], example.get("sample_code", ""), example["answer"])
            + block(problem["question_content"], problem["starter_code"], ""))


def build_prompt(problem: dict, protocol: Protocol, few_shot_dir: str | None = None):
    if protocol.style == "base":
        return base_prompt(problem, few_shot_dir)
    return [{"role": "system", "content": SYSTEM_MESSAGE}, {"role": "user", "content": question_prompt(problem)}]


def extract_solution(completion: str, style: str) -> str:
    """lcb_runner reads the last fenced block of a chat answer and a base answer whole."""
    if style == "base":
        return completion.strip()
    if completion.count("```") < 2:
        return ""
    return code_block(completion, last=True)


# ------------------------------------------------------------------ grading in the sandbox

# lcb_runner prepends these imports to every program (a solution may use deque unimported).
PREAMBLE = "\n".join(
    [f"from {m} import *" for m in ("string", "re", "datetime", "collections", "heapq", "bisect", "copy",
                                     "math", "random", "statistics", "itertools", "functools", "operator",
                                     "io", "sys", "json", "builtins", "typing")]
    + [f"import {m}" for m in ("string", "re", "datetime", "collections", "heapq", "bisect", "copy", "math",
                               "random", "statistics", "itertools", "functools", "operator", "io", "sys",
                               "json")]
    + ["sys.setrecursionlimit(50000)", ""])

_HARNESS = r'''
import json, os, signal, sys, time
from decimal import Decimal, InvalidOperation

# the run's nonce, for the report line only: read before the solution runs
nonce = sys.stdin.readline().strip()
os.dup2(os.open(os.devnull, os.O_RDONLY), 0)

spec = json.load(open("tests.json"))
code = open("solution.py").read()
timeout = spec["timeout"]

def report(ok, reason):
    sys.__stdout__.write(f"\n@@LCB {nonce}@@" + json.dumps({"passed": ok, "reason": reason}) + "\n")
    sys.__stdout__.flush()
    os._exit(0)

def alarm(signum, frame):
    raise TimeoutError("time limit exceeded")

def lines(text):
    return [line.strip() for line in text.strip().split("\n")]

def decimals(line):
    try:
        return [Decimal(x) for x in line.split()]
    except InvalidOperation:
        return None

def same_output(got, want):
    got, want = lines(got), lines(want)
    if len(got) != len(want):
        return False
    for g, w in zip(got, want):
        if g != w and (decimals(g) is None or decimals(g) != decimals(w)):
            return False
    return True

try:
    program = compile(code, "solution.py", "exec")
except SyntaxError as e:
    report(False, f"SyntaxError: {e}")

if spec["fn_name"]:
    sys.stdout = open(os.devnull, "w")  # what the solution prints is not its answer
    signal.signal(signal.SIGALRM, alarm)
    module = {"__name__": "solution"}
    try:
        signal.alarm(timeout)
        exec(program, module)
        solution = module["Solution"]() if "class Solution" in code else None
        method = getattr(solution, spec["fn_name"]) if solution is not None else module[spec["fn_name"]]
        signal.alarm(0)
    except BaseException as e:
        report(False, f"compile: {type(e).__name__}: {e}")
    for i, t in enumerate(spec["tests"]):
        args = [json.loads(line) for line in t["input"].split("\n")]
        want = json.loads(t["output"])
        try:
            signal.alarm(timeout)
            got = method(*args)
            signal.alarm(0)
        except BaseException as e:
            signal.alarm(0)
            report(False, f"test {i}: {type(e).__name__}: {e}"[:300])
        if isinstance(got, tuple):
            got = list(got)
        if got != want:
            report(False, f"test {i}: wrong answer {repr(got)[:100]} != {repr(want)[:100]}")
    report(True, "passed")

for i, t in enumerate(spec["tests"]):
    with open("in.txt", "w") as f:
        f.write(t["input"])
    pid = os.fork()
    if pid == 0:
        os.dup2(os.open("in.txt", os.O_RDONLY), 0)
        os.dup2(os.open("out.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 1)
        sys.stdin = open(0, closefd=False)
        sys.stdout = open(1, "w", closefd=False)
        status = 0
        try:
            exec(program, {"__name__": "__main__"})
        except SystemExit:
            pass
        except BaseException as e:
            sys.stderr.write(f"{type(e).__name__}: {e}"[:300])
            status = 1
        sys.stdout.flush()
        os._exit(status)
    deadline = time.monotonic() + timeout
    while True:
        done, wstatus = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            report(False, f"test {i}: time limit exceeded")
        time.sleep(0.002)
    if os.waitstatus_to_exitcode(wstatus) != 0:
        report(False, f"test {i}: runtime error (exit {os.waitstatus_to_exitcode(wstatus)})")
    if not same_output(open("out.txt").read(), t["output"]):
        report(False, f"test {i}: wrong answer")
report(True, "passed")
'''


def check_solution(problem: dict, solution: str, *, timeout: int = 6, memory_mb: int = 4096) -> dict:
    """Run ``solution`` on all of a problem's tests (public then private) in the sandbox."""
    tests = problem["public_test_cases"] + problem["private_test_cases"]
    fn_name = problem["metadata"].get("func_name")
    spec = {"tests": tests, "fn_name": fn_name, "timeout": int(timeout)}
    files = {"harness.py": _HARNESS, "solution.py": PREAMBLE + "\n" + solution, "tests.json": json.dumps(spec)}
    return harness_verdict(files, "LCB", timeout=(timeout + 1) * len(tests) + 5, memory_mb=memory_mb,
                           max_file_mb=64, on_death="harness died")


# ------------------------------------------------------------------ the benchmark

def evaluate(generator, settings: dict, protocol: Protocol, cache: GenerationCache | None = None) -> dict:
    """Generate for every problem of the window and report Full and Easy pass@k."""
    problems, source = load_problems(settings)
    if not problems:
        raise Unavailable(f"no problems in {source}")
    tasks = [Task(p["question_id"], build_prompt(p, protocol, settings.get("few_shot_dir"))) for p in problems]
    completions = generate(generator, tasks, protocol, cache=cache)
    return score(problems, completions, protocol, source=source, prompts=[t.prompt for t in tasks],
                 timeout=settings.get("timeout", 6), memory_mb=settings.get("memory_mb", 4096))


def score(problems: list[dict], completions: list[list[str]], protocol: Protocol, *, source: str,
          prompts: list | None = None, timeout: int = 6, memory_mb: int = 4096) -> dict:
    from concurrent.futures import ThreadPoolExecutor

    jobs = [(i, j, extract_solution(c, protocol.style)) for i, group in enumerate(completions)
            for j, c in enumerate(group)]
    with ThreadPoolExecutor(max_workers=max(1, protocol.workers)) as pool:
        verdicts = list(pool.map(lambda job: check_solution(problems[job[0]], job[2], timeout=timeout,
                                                            memory_mb=memory_mb)
                                 if job[2].strip() else {"passed": False, "reason": "no code block in the answer"},
                                 jobs))
    correct = [[False] * len(g) for g in completions]
    records = []
    for (i, j, solution), v in zip(jobs, verdicts):
        correct[i][j] = v["passed"]
        p = problems[i]
        records.append({"benchmark": "livecodebench", "task_id": p["question_id"], "sample": j,
                        "difficulty": p["difficulty"], "prompt": prompts[i] if prompts else None,
                        "completion": completions[i][j], "solution": solution, "passed": v["passed"],
                        "reason": short(v["reason"])})
    scores = {"full": summarize(correct, protocol, source)}
    absent = {}
    easy = [c for p, c in zip(problems, correct) if p["difficulty"] == "easy"]
    if easy:
        scores["easy"] = summarize(easy, protocol, f"{source}, difficulty easy")
    else:
        absent["easy"] = f"no easy problems in {source}"
    return {"scores": scores, "absent": absent, "records": records}
