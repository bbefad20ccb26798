"""How standalone the pool's snippets are: the sandboxed define check on real libraries.

For each library (an installed package, or ``stdlib``) this runs extract (a ``tree``
source at the package's folder) and filter with its define check, then prints the
functions extracted, the drop reasons, the snippets the static analysis kept, and how
many of those define cleanly in a fresh namespace in the sandbox (``rate``; ``rate
installed``: leaving out those that need a module this machine lacks), with the first
failures::

    python bench/standalone.py requests urllib3 yaml jsonschema flask sklearn pandas stdlib
    python bench/standalone.py --tree /path/to/src/mypkg --workers 2 --out standalone.json
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from scoder.pool.extract import extract_functions  # noqa: E402
from scoder.pool.filter import filter_functions  # noqa: E402

BANNED = ["os", "sys", "subprocess", "argparse", "setuptools", "distutils", "matplotlib", "seaborn"]


def source_of(name: str) -> dict:
    """The pool source of an installed package's folder, or the stdlib."""
    if name == "stdlib":
        return {"type": "stdlib"}
    if os.path.isdir(name):
        return {"type": "tree", "path": name, "name": Path(name).name}
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"{name}: not an installed package (give a folder with --tree)")
    return {"type": "tree", "path": list(spec.submodule_search_locations)[0], "name": name}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("libraries", nargs="*", help="installed package names, or 'stdlib'")
    ap.add_argument("--tree", action="append", default=[], help="a source folder (repeatable)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--keep-methods", action="store_true")
    ap.add_argument("--failures", type=int, default=3, help="failures to print per library")
    ap.add_argument("--out", default=None, help="write the figures as JSON here")
    args = ap.parse_args()
    report, total = {}, {"checked": 0, "pass": 0, "missing_module": 0, "error": 0}
    print(f"load average {os.getloadavg()[0]:.1f}, {args.workers} workers", flush=True)
    for name in [*args.libraries, *args.tree]:
        t = time.perf_counter()
        records, _, _ = extract_functions([source_of(name)], workers=args.workers)
        kept, stats, skipped = filter_functions(records, banned_imports=BANNED, keep_methods=args.keep_methods,
                                                workers=args.workers)
        d = stats["define_check"]
        for k in total:
            total[k] += d[k]
        report[name] = {"extracted": len(records), "kept": len(kept), "dropped": stats["dropped"], "define_check": d,
                        "seconds": round(time.perf_counter() - t, 1)}
        rate = f"{100 * d['rate']:.1f}%" if d["rate"] is not None else "-"
        installed = f"{100 * d['rate_installed']:.1f}%" if d["rate_installed"] is not None else "-"
        print(f"{name:<14} {len(records):>6} extracted {d['checked']:>5} checked {d['pass']:>5} define "
              f"({rate}, installed {installed}) missing module {d['missing_module']:>3} error {d['error']:>3}  "
              f"[{report[name]['seconds']} s]", flush=True)
        print("    dropped: " + ", ".join(f"{k} {v}" for k, v in stats["dropped"].items() if v))
        for entry in [e for e in skipped if e["reason"] == "define_error"][:args.failures]:
            print(f"    {entry['id']}: {entry['detail'][:160]}")
    if total["checked"]:
        installed = total["checked"] - total["missing_module"]
        report["total"] = {**total, "rate": round(total["pass"] / total["checked"], 4),
                           "rate_installed": round(total["pass"] / installed, 4) if installed else None}
        print(f"all: {total['pass']} of {total['checked']} define ({100 * report['total']['rate']:.1f}%; "
              f"{total['missing_module']} need a missing module)")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
