"""Figures and the results table of one run, for ``snakemake --report``.

Each ``plot_*`` function takes plain data (what the stages wrote), draws one
figure with matplotlib, writes it to ``out`` (PNG, or SVG by suffix) and returns
the numbers it drew, so a test can check the panels without looking at pixels.
``render_run`` reads a run's stage files and draws all of them
(``rules/plots.smk`` calls it through ``scripts/plots.py``).
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from scoder.archive import flatten  # noqa: E402
from scoder.io import iter_jsonl, read_json  # noqa: E402
from scoder.pool.export import POOL_STAGES, left_out, reason_label, reasons_text  # noqa: E402

STAGE_COLORS = dict(zip(POOL_STAGES, ("#4C72B0", "#55A868", "#C44E52", "#8172B2", "#CCB974", "#64B5CD", "#DD8452")))
DPI = 130
MAX_DOTS = 400  # samples drawn as dots per box; the box itself uses all of them


def _save(fig: Figure, out) -> None:
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=DPI, bbox_inches="tight")


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


# --- the snippet pool ------------------------------------------------------------------

def funnel_counts(stats: dict[str, dict]) -> tuple[list[str], list[int], dict[str, int]]:
    """The pool size after each filter, and why snippets were dropped, from the stages' stats.json."""
    labels, counts = [], []
    extract = stats.get("extract", {})
    if "functions_seen" in extract:
        labels.append("functions in the sources")
        counts.append(extract["functions_seen"])
    if "functions_extracted" in extract:
        labels.append("… with a docstring")
        counts.append(extract["functions_extracted"])
    for stage in POOL_STAGES:
        if stage in stats:
            labels.append(stage)
            counts.append(int(stats[stage]["out"]))
    drops: dict[str, int] = {}
    for stage in POOL_STAGES:
        st = stats.get(stage)
        if st is None:
            continue
        for reason, n in left_out(stage, st).items():
            drops[f"{stage}: {reason_label(stage, reason)}"] = int(n)
        if stage == "seed" and st.get("supply"):
            drops["seed: not a seed (kept as supply)"] = int(st["supply"])
    return labels, counts, drops


def plot_pool_funnel(stats: dict[str, dict], out) -> dict:
    """Bars of the pool size through extract → … → seed, and a panel of the drop reasons."""
    labels, counts, drops = funnel_counts(stats)
    fig = Figure(figsize=(12, 0.45 * max(len(labels), len(drops), 6) + 1.2))
    ax, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.2, 1]})
    y = np.arange(len(labels))[::-1]
    colors = [STAGE_COLORS.get(label, "0.65") for label in labels]
    ax.barh(y, counts, color=colors)
    log = bool(counts) and min(counts) > 0 and max(counts) / min(counts) > 50
    if log:
        ax.set_xscale("log")
        ax.set_xlim(0.8, max(counts) * 60)  # room for the labels right of the bars
    for yi, n, prev in zip(y, counts, [None] + counts[:-1]):
        share = f"  ({100 * n / prev:.0f}% of the previous)" if prev else ""
        ax.text(n, yi, f" {n:,}{share}", va="center", fontsize=9)
    ax.set_yticks(y, labels)
    ax.set_xlabel("snippets")
    ax.set_title("Snippet pool through every filter")
    if not log:
        ax.margins(x=0.45)
    if drops:
        names = list(drops)
        yd = np.arange(len(names))[::-1]
        ax2.barh(yd, [drops[n] for n in names], color=[STAGE_COLORS.get(n.split(":")[0], "0.6") for n in names])
        for yi, n in zip(yd, names):
            ax2.text(drops[n], yi, f" {drops[n]:,}", va="center", fontsize=9)
        ax2.set_yticks(yd, names)
        ax2.set_xlabel("snippets")
        ax2.margins(x=0.2)
    else:
        _empty(ax2, "nothing dropped")
    ax2.set_title("Why snippets left the pool")
    fig.tight_layout()
    _save(fig, out)
    return {"stages": labels, "counts": counts, "drops": drops}


def plot_categories(pool: dict[str, int], seeds: dict[str, int] | None, out,
                    order: list[str] | None = None) -> dict:
    """Snippets per task category in the categorized pool and in the seed set."""
    seeds = seeds or {}
    names = list(order or []) + sorted((set(pool) | set(seeds)) - set(order or []), key=lambda c: (-pool.get(c, 0), c))
    fig = Figure(figsize=(11, 0.5 * max(len(names), 4) + 1.2))
    ax = fig.subplots()
    if not names:
        _empty(ax, "no categories")
    else:
        y = np.arange(len(names))[::-1]
        p = [pool.get(c, 0) for c in names]
        s = [seeds.get(c, 0) for c in names]
        h = 0.4
        ax.barh(y + h / 2, p, h, label=f"categorized pool ({sum(p):,})", color="#64B5CD")
        ax.barh(y - h / 2, s, h, label=f"seed set ({sum(s):,})", color="#DD8452")
        for yi, a, b in zip(y, p, s):
            ax.text(a, yi + h / 2, f" {a:,}", va="center", fontsize=8)
            ax.text(b, yi - h / 2, f" {b:,}", va="center", fontsize=8)
        ax.set_yticks(y, [c.replace(" Problems", "") for c in names])
        ax.set_xlabel("snippets")
        ax.legend(loc="lower right")
        ax.margins(x=0.1)
    ax.set_title("Task categories (most similar INSTRUCTOR/embedder category per snippet)")
    fig.tight_layout()
    _save(fig, out)
    return {"categories": names, "pool": [pool.get(c, 0) for c in names], "seeds": [seeds.get(c, 0) for c in names]}


# --- the bootstrap iterations ----------------------------------------------------------

def plot_aspect_scores(scored: dict[int, list[dict]], aspects: list[str], out) -> dict:
    """Per iteration, the distribution of each aspect score (and the scorer's composite) over the samples."""
    iterations = sorted(scored)
    columns = list(aspects) + ["composite"]
    fig = Figure(figsize=(max(10, 0.9 * len(columns) + 2), 3.2 * max(len(iterations), 1) + 0.6))
    axes = np.atleast_1d(fig.subplots(max(len(iterations), 1), 1, squeeze=False)[:, 0])
    rng = np.random.default_rng(0)  # jitter only; fixed so the figure is reproducible
    summary = {"iterations": iterations, "n": [], "means": {}}
    for ax, i in zip(axes, iterations):
        records = scored[i]
        data = []
        for col in columns:
            if col == "composite":
                vals = [r.get("composite") for r in records]
            else:
                vals = [(r.get("aspect_scores") or {}).get(col) for r in records]
            data.append(np.array([v for v in vals if v is not None and not (isinstance(v, float) and math.isnan(v))],
                                 dtype=float))
        summary["n"].append(len(records))
        summary["means"][i] = {c: (float(d.mean()) if len(d) else None) for c, d in zip(columns, data)}
        if not records:
            _empty(ax, f"iteration {i}: no scored samples")
            continue
        pos = np.arange(1, len(columns) + 1)
        ax.boxplot([d if len(d) else [np.nan] for d in data], positions=pos, widths=0.55, showfliers=False,
                   medianprops={"color": "#C44E52"})
        for x, d in zip(pos, data):
            shown = d if len(d) <= MAX_DOTS else rng.choice(d, MAX_DOTS, replace=False)
            ax.scatter(x + rng.uniform(-0.15, 0.15, len(shown)), shown, s=10, alpha=0.6 if len(d) <= MAX_DOTS else 0.2,
                       color="#4C72B0", zorder=3)
        ax.axvline(len(aspects) + 0.5, color="0.6", lw=0.8, ls=":")
        ax.set_xticks(pos, [c.replace("_", "\n") for c in columns], fontsize=8)
        ax.set_ylabel("score")
        ax.set_ylim(-0.3, 9.3)
        ax.set_title(f"Iteration {i}: aspect scores of {len(records):,} samples", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    if not iterations:
        _empty(axes[0], "no aspect scores in this run (no iterations, or multi-aspect scoring is off)")
    fig.tight_layout()
    _save(fig, out)
    return summary


SELECTION_AXIS = {"influence": "influence V(d) = cos(ĝ(d), mean ĝ(D_p))", "score": "weighted aspect score",
                  "random": "random rank", "low_perplexity": "perplexity under the reference model",
                  "high_perplexity": "perplexity under the reference model"}


def plot_influence(selections: dict[int, dict], out) -> dict:
    """Per iteration, the histogram of the candidates' influence values with the top-K cut."""
    iterations = sorted(selections)
    fig = Figure(figsize=(5 * max(len(iterations), 1) + 1, 4))
    axes = np.atleast_1d(fig.subplots(1, max(len(iterations), 1), squeeze=False)[0])
    summary = {"iterations": iterations, "n": [], "selected": [], "cut": [], "missing": []}
    for ax, i in zip(axes, iterations):
        sel = selections[i]
        raw = sel.get("values") or []
        values = np.array([v for v in raw if v is not None], dtype=float)
        cut, by = sel.get("cut"), (sel.get("settings") or {}).get("by", "influence")
        selected = int(sel.get("out", 0))
        summary["n"].append(len(raw))
        summary["selected"].append(selected)
        summary["cut"].append(cut)
        summary["missing"].append(len(raw) - len(values))
        if not len(values):
            _empty(ax, f"iteration {i}: no candidates")
            continue
        bins = int(min(40, max(5, len(values) // 3)))
        ax.hist(values, bins=bins, color="#8172B2", alpha=0.85, label=f"{len(values):,} candidates")
        if cut is not None:
            low = by == "low_perplexity"  # the one criterion that keeps the smallest values
            span = (min(values.min(), cut), cut) if low else (cut, max(values.max(), cut))
            ax.axvspan(*span, color="#55A868", alpha=0.15, label=f"selected: {'bottom' if low else 'top'} {selected:,}")
            ax.axvline(cut, color="#C44E52", ls="--", lw=1.5, label=f"cut = {cut:.3g}")
        missing = len(raw) - len(values)
        ax.set_title(f"Iteration {i}: selection by {by}" + (f" ({missing} without gradient)" if missing else ""),
                     fontsize=10)
        ax.set_xlabel(SELECTION_AXIS.get(by, by))
        ax.set_ylabel("candidates")
        ax.legend(fontsize=8)
    if not iterations:
        _empty(axes[0], "no bootstrap iterations")
    fig.tight_layout()
    _save(fig, out)
    return summary


# --- results ------------------------------------------------------------------------------

def benchmark_metrics(benchmarks: dict) -> dict[str, tuple[float, int | None]]:
    """``{"humaneval": {"base": {"pass@1": 40.0, "n": 164}}}`` → ``{"humaneval (base)": (40.0, 164)}``
    (a bare number per variant, with ``n`` beside it, reads the same)."""
    metrics = {}
    for bench, entry in (benchmarks or {}).items():
        if _number(entry):
            metrics[bench] = (float(entry), None)
            continue
        for variant, v in (entry or {}).items():
            if isinstance(v, dict) and _number(v.get("pass@1")):
                metrics[f"{bench} ({variant})"] = (float(v["pass@1"]), v.get("n"))
            elif variant != "n" and _number(v):
                metrics[f"{bench} ({variant})"] = (float(v), entry.get("n"))
    return metrics


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def plot_benchmark_curve(probes: list[tuple[str, dict]], final: dict | None, out) -> dict:
    """pass@1 of every benchmark for each stage's probe (Table 2: the target base model fine-tuned
    on that stage's synthesizer's data) and, apart, for the final SCoder model (Table 3)."""
    labels = [label for label, _ in probes] + (["final SCoder"] if final is not None else [])
    per_point = [benchmark_metrics(b) for _, b in probes] + ([benchmark_metrics(final)] if final is not None else [])
    names = sorted({m for p in per_point for m in p})
    sizes = {m: n for p in per_point for m, (_, n) in p.items() if n}
    fig = Figure(figsize=(max(6.5, 1.5 * len(labels) + 3), 4.4))
    ax = fig.subplots()
    metrics = {name: [p[name][0] if name in p else None for p in per_point] for name in names}
    values = [v for ys in metrics.values() for v in ys if v is not None]
    percent = any(v > 1 for v in values)  # results carry pass@1 in percent; older files a fraction
    for name, ys in metrics.items():
        line = None
        curve = [(x, y) for x, y in enumerate(ys[: len(probes)]) if y is not None]
        label = f"{name}, {sizes[name]} problems" if name in sizes else name
        if curve:
            line, = ax.plot(*zip(*curve), marker="o", label=label)
        if final is not None and ys[-1] is not None:
            line2 = ax.scatter([len(probes)], [ys[-1]], marker="*", s=160, zorder=3,
                               color=line.get_color() if line else None, label=None if line else label)
            color = line.get_color() if line else line2.get_facecolor()[0]
            curve.append((len(probes), ys[-1]))
        else:
            color = line.get_color() if line else "k"
        for x, y in curve:
            ax.annotate(f"{y:.1f}" if percent else f"{y:.3f}", (x, y), textcoords="offset points",
                        xytext=(0, 7), ha="center", fontsize=8, color=color)
    if names:
        ax.set_xticks(range(len(labels)), labels, fontsize=9)
        if final is not None and probes:
            ax.axvline(len(probes) - 0.5, color="0.6", lw=0.8, ls=":")
        top = max(values, default=0.0)
        scale = 100.0 if percent else 1.0
        ax.set_ylim(0, scale if top > 0.6 * scale else max(0.1 * scale, top * 1.3))
        ax.set_xlim(-0.5, len(labels) - 0.5)
        ax.set_ylabel("pass@1 (%)" if percent else "pass@1")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    else:
        _empty(ax, "no benchmark results")
    ax.set_title("Benchmarks of each stage's probe and of the final model" if probes
                 else "Benchmarks of the final model (no per-stage probes in this run)")
    fig.tight_layout()
    _save(fig, out)
    return {"labels": labels, "metrics": metrics}


def plot_costs(stages: dict[str, dict], out) -> dict:
    """Wall time per stage (summed over its jobs), with the peak memory of its largest job."""
    names = list(stages)
    fig = Figure(figsize=(10, 0.3 * max(len(names), 4) + 1.2))
    ax = fig.subplots()
    if names:
        y = np.arange(len(names))[::-1]
        wall = [stages[n].get("wall_s", 0.0) for n in names]
        ax.barh(y, wall, color=[STAGE_COLORS.get(n, "#4C72B0") for n in names])
        for yi, n, w in zip(y, names, wall):
            st = stages[n]
            note = f" {w:,.0f} s, {st.get('jobs', 1)} job(s), peak {st.get('max_rss_mb', 0) / 1024:.1f} GiB"
            if st.get("gpu_hours"):
                note += f", {st['gpu_hours']:.2f} GPU h"
            ax.text(w, yi, note, va="center", fontsize=8)
        ax.set_yticks(y, names)
        ax.set_xlabel("wall time (s, summed over jobs)")
        ax.margins(x=0.45)
        ax.set_title(f"Where the time went: {sum(wall):,.0f} s in all")
    else:
        _empty(ax, "no benchmark files")
    fig.tight_layout()
    _save(fig, out)
    return {"stages": names, "wall_s": [stages[n].get("wall_s", 0.0) for n in names]}


def results_tables(results: dict) -> dict:
    """The results JSON as tables: benchmarks, data counts per stage and iteration, costs, every field."""
    import pandas as pd

    bench = []
    for b, e in results.get("benchmarks", {}).items():
        for k, v in (e or {}).items():
            if isinstance(v, dict):
                bench.append({"benchmark": b, "variant": k, "pass@1": v.get("pass@1"), "problems": v.get("n"),
                              "dataset": v.get("dataset")})
            elif k not in ("n", "dataset"):
                bench.append({"benchmark": b, "variant": k, "pass@1": v, "problems": e.get("n"),
                              "dataset": e.get("dataset")})
    bench += [{"benchmark": b, "variant": "—", "pass@1": "not run: " + str(why), "problems": None, "dataset": None}
              for b, why in results.get("benchmarks_absent", {}).items()]
    data = results.get("data", {})
    pool = [{"stage": s, "in": st.get("in"), "out": st.get("out"),
             "left out, by reason": reasons_text(s, left_out(s, st))} for s, st in data.get("pool", {}).items()]
    iters = [{k: v for k, v in it.items() if not isinstance(v, (dict, list))} for it in data.get("iterations", [])]
    cost = [{"stage": s, **c} for s, c in results.get("cost", {}).get("stages", {}).items()]
    tables = {"Benchmarks (pass@1)": pd.DataFrame(bench), "Snippet pool": pd.DataFrame(pool),
              "Bootstrap iterations": pd.DataFrame(iters), "Cost per stage": pd.DataFrame(cost)}
    flat = flatten(results)
    tables["Every field of the results file"] = pd.DataFrame({"field": list(flat), "value": list(flat.values())})
    return tables


TABLE_CSS = """body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.3em}h2{font-size:1.05em;margin-top:1.6em}
table{border-collapse:collapse;font-size:0.85em}th,td{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f0f0f0}tr:nth-child(even) td{background:#fafafa}"""


def write_results_table(results: dict, out) -> dict:
    """One HTML page of the results JSON as tables; returns the row count of each table."""
    tables = results_tables(results)
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{results.get('model', '')}</title>"
             f"<style>{TABLE_CSS}</style></head><body><h1>{results.get('model', '')}: run "
             f"<code>{results.get('run', '')}</code></h1>"]
    for title, df in tables.items():
        parts.append(f"<h2>{title}</h2>")
        parts.append(df.to_html(index=False, na_rep="", float_format=lambda v: f"{v:.4g}", border=0)
                     if len(df) else "<p>none</p>")
    parts.append("</body></html>")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text("\n".join(parts), encoding="utf-8")
    return {title: len(df) for title, df in tables.items()}


# --- one run ---------------------------------------------------------------------------------

_ITER = re.compile(r"iter(\d+)_(\w+)$")


def _paths(value) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _probe_order(name: str) -> int:
    return -1 if name == "original" else int(name[4:]) if name[4:].isdigit() else 10**6


def render_run(files: dict, outputs: dict[str, str], aspects: list[str], categories: list[str] | None = None) -> dict:
    """Draw every figure of a run from its files: keys as in ``scoder.layout.Run.report_files``, plus
    ``results``, ``iter<i>_scored`` (one file or one per shard) and ``probe_<name>`` (optional)."""
    stats = {s: read_json(files[f"{s}_stats"]) for s in POOL_STAGES if f"{s}_stats" in files}
    results = read_json(files["results"])
    per_iter: dict[str, dict[int, list[str]]] = {}
    for name, value in files.items():
        m = _ITER.match(name)
        if m:
            per_iter.setdefault(m.group(2), {})[int(m.group(1))] = _paths(value)
    # only the scores: at paper scale the samples' text would not fit in memory
    scored = {i: [{"aspect_scores": r.get("aspect_scores"), "composite": r.get("composite")}
                  for p in paths for r in iter_jsonl(p)] for i, paths in per_iter.get("scored", {}).items()}
    selections = {i: read_json(paths[0]) for i, paths in per_iter.get("select_stats", {}).items()}
    probe_names = sorted((n[len("probe_"):] for n in files if n.startswith("probe_")), key=_probe_order)
    probes = []
    for name in probe_names:
        probe = read_json(files[f"probe_{name}"])
        probes.append((probe.get("synthesizer", name), probe.get("benchmarks", {})))
    categorized = stats.get("categorize", {}).get("categories", {})
    return {
        "funnel": plot_pool_funnel(stats, outputs["funnel"]),
        "categories": plot_categories(categorized, stats.get("seed", {}).get("seeds_per_category"),
                                      outputs["categories"], order=categories),
        "aspects": plot_aspect_scores(scored, aspects, outputs["aspects"]),
        "influence": plot_influence(selections, outputs["influence"]),
        "benchmarks": plot_benchmark_curve(probes, results.get("benchmarks", {}), outputs["benchmarks"]),
        "costs": plot_costs(results.get("cost", {}).get("stages", {}), outputs["costs"]),
        "table": write_results_table(results, outputs["table"]),
    }
