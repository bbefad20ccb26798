"""The proof that a snippet stands alone: define it on its own in the project's sandbox.

Each snippet's code (supplemented imports, copied constants, the function) is executed in
a fresh namespace by a small harness that runs in :mod:`scoder.sandbox` (no network, a
private throw-away work dir, rlimits, an unprivileged uid), ``BATCH`` snippets per
sandboxed interpreter (their imports are cached between them, their namespaces are not).
A snippet's outcome (``status``):

- ``pass``: its code ran to the end and bound its function's name (to what its
  decorators made of it: a ``classmethod`` of a kept method is not callable);
- ``missing_module``: an import names a top-level module that is not installed here. As
  SODA does with environment errors, that is not held against the snippet (Stack code
  imports all kinds of packages);
- ``error``: anything else, with the exception line (``NameError: ...``, ``ImportError:
  cannot import name ...``, a failing decorator, a timeout or a crash of the interpreter).

The interpreter's own ``sys.path`` comes first; a snippet's ``import_root`` (the directory
its source package is imported from) is appended, so code from a tree that is not
installed can import its own package. The first snippet of a batch that kills the
interpreter (a crash, the batch's wall clock) is an ``error``; the rest of the batch runs
again in a fresh sandbox. ::

    results = define_snippets([{"code": "import math\\n\\ndef f():\\n    return math.pi\\n", "name": "f"}])
    summarize(results)["rate"]   # 1.0
"""
from __future__ import annotations

import json
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from tqdm.auto import tqdm

from scoder.sandbox import run_command

BATCH = 200  # snippets per sandboxed interpreter
STATUSES = ("pass", "missing_module", "error")

HARNESS = r'''
import importlib.util, json, os, signal, sys

class DefineTimeout(Exception):
    pass

def alarm(signum, frame):
    raise DefineTimeout("defining took longer than %ss" % job["timeout"])

with open("job.json", encoding="utf-8") as f:
    job = json.load(f)
for p in job["sys_path"]:
    if p not in sys.path:
        sys.path.append(p)
out = os.fdopen(os.dup(1), "w", buffering=1)
null = os.open(os.devnull, os.O_RDWR)
for fd in (0, 1, 2):  # what the snippets' imports print must not mix with the results
    os.dup2(null, fd)
signal.signal(signal.SIGALRM, alarm)
for i, (code, name) in enumerate(job["snippets"]):
    status, detail = "pass", ""
    signal.alarm(job["timeout"])
    try:
        namespace = {"__name__": "__snippet__"}
        exec(compile(code, "<snippet>", "exec"), namespace)
        if name not in namespace:
            status, detail = "error", "%s is not defined by the snippet" % name
    except ModuleNotFoundError as e:
        top = (e.name or "").split(".")[0]
        try:
            installed = bool(top) and importlib.util.find_spec(top) is not None
        except (ImportError, ValueError):
            installed = False
        status = "error" if installed else "missing_module"
        detail = "%s: %s" % (type(e).__name__, e)
    except BaseException as e:
        status, detail = "error", "%s: %s" % (type(e).__name__, e)
    finally:
        signal.alarm(0)
    out.write(json.dumps([i, status, detail[:300]]) + "\n")
out.flush()
os._exit(0)  # threads an import started must not keep the interpreter alive
'''


def _run_batch(snippets: list[dict], timeout: int, memory_mb: int) -> list[dict]:
    """Outcomes of one batch, rerunning what follows a snippet that killed the interpreter."""
    results: list[dict] = []
    while len(results) < len(snippets):
        todo = snippets[len(results):]
        roots = sorted({s["import_root"] for s in todo if s.get("import_root")})
        job = {"snippets": [[s["code"], s["name"]] for s in todo], "sys_path": roots, "timeout": timeout}
        reach = sorted({sys.base_prefix, sys.prefix, *roots})
        run = run_command([sys.executable, "-I", "main.py"], {"main.py": HARNESS, "job.json": json.dumps(job)},
                          timeout=60 + 2 * len(todo), memory_mb=memory_mb, reach=reach)
        if run.setup_error:  # a broken sandbox must not read as broken snippets
            raise RuntimeError(f"define check: the sandbox failed: {run.setup_error}")
        done = []
        for line in run.stdout.splitlines():
            try:
                i, status, detail = json.loads(line)
            except ValueError:
                continue
            if i == len(done) and status in STATUSES:
                done.append({"status": status, "detail": detail})
        results += done
        if len(results) < len(snippets) and len(done) < len(todo):
            why = run.killed_reason or f"exit code {run.returncode}"
            results.append({"status": "error", "detail": f"InterpreterDied: while defining it ({why})"})
    return results


def define_snippets(snippets: list[dict], *, workers: int = 1, timeout: int = 10, memory_mb: int = 8192,
                    batch: int = BATCH, progress: bool = False) -> list[dict]:
    """``{"status", "detail"}`` per snippet (``{"code", "name", "import_root"?}``), in order.
    ``timeout``: seconds per snippet; ``memory_mb``: the interpreter's address space (large
    libraries such as torch reserve gigabytes on import)."""
    batches = [snippets[i:i + batch] for i in range(0, len(snippets), batch)]
    out: list[dict] = []
    with ThreadPoolExecutor(max(1, workers)) as pool, \
            tqdm(total=len(snippets), desc="define check", unit="snippet", disable=not progress) as bar:
        for results in pool.map(lambda b: _run_batch(b, timeout, memory_mb), batches):
            out += results
            bar.update(len(results))
    return out


def summarize(results: list[dict]) -> dict:
    """Counts per status, the pass rate (passed / checked) and, for the failures, the
    count per exception type."""
    counts = Counter(r["status"] for r in results)
    errors = Counter(r["detail"].split(":")[0] for r in results if r["status"] == "error")
    checked = len(results)
    installed = checked - counts["missing_module"]
    return {"checked": checked, **{s: counts[s] for s in STATUSES},
            "rate": round(counts["pass"] / checked, 4) if checked else None,
            "rate_installed": round(counts["pass"] / installed, 4) if installed else None,
            "errors": dict(errors.most_common())}
