"""Load config/config.yaml: resolve each run's `extends:` chain and validate it.

A bad config stops the workflow before any job starts, with a message naming
the run and the setting (``runs.tiny.sampling.temprature: unknown setting``).
"""
from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import yaml

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "config" / "schema.yaml"


class ConfigError(ValueError):
    """A config problem, phrased so the user knows which setting to fix."""


def deep_merge(base: dict, override: dict) -> dict:
    """``override`` on top of ``base``; nested dicts merge, everything else replaces.

    A backend section that switches to another ``backend`` replaces the inherited
    one whole: vLLM's options mean nothing to the transformers backend."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        switches_backend = (isinstance(value, dict) and isinstance(out.get(key), dict)
                            and value.get("backend", out[key].get("backend")) != out[key].get("backend"))
        if isinstance(value, dict) and isinstance(out.get(key), dict) and not switches_backend:
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def resolve_run(runs: dict, name: str, _seen: tuple = (), section: str = "runs") -> dict:
    """The full settings of run ``name`` after merging its ``extends`` chain."""
    if name not in runs:
        raise ConfigError(f"run '{name}' is not defined under {section}: (defined: {', '.join(sorted(runs))})")
    if name in _seen:
        raise ConfigError(f"{section}.{name}.extends: cycle {' -> '.join(_seen + (name,))}")
    run = runs[name]
    parent = run.get("extends")
    if parent is None:
        merged = copy.deepcopy(run)
    else:
        merged = deep_merge(resolve_run(runs, parent, _seen + (name,), section), run)
    merged.pop("extends", None)
    return merged


def _where(error: jsonschema.ValidationError, prefix: str) -> str:
    """``prefix.a.b[0].c``: where the error is, list items by index."""
    return prefix + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)


def _message(error: jsonschema.ValidationError, prefix: str) -> str:
    if error.validator == "required":
        missing = next((k for k in error.validator_value if k not in error.instance), error.validator_value[0])
        what = f" (a {error.instance['type']} source)" if missing == "path" and "type" in error.instance else ""
        return f"{_where(error, prefix)}.{missing}: missing, it is required here{what}"
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = [k for k in error.instance if k not in error.schema.get("properties", {})]
        return (f"{_where(error, prefix)}.{extra[0]}: unknown setting"
                + (f" (allowed here: {', '.join(allowed)})" if allowed else ""))
    return f"{_where(error, prefix)}: {error.message}"


def load_schema() -> dict:
    with open(SCHEMA_PATH, encoding="utf-8") as f:
        return yaml.safe_load(f)


def validate(config: dict) -> dict[str, dict]:
    """Check the whole file and every run; return {run name: resolved settings}."""
    schema = load_schema()
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(config), key=str)
    if errors:
        raise ConfigError("config/config.yaml: " + _message(errors[0], "config"))
    run_schema = {**schema["$defs"]["run"], "$defs": schema["$defs"]}
    validator = jsonschema.Draft202012Validator(run_schema)
    resolved = {}
    for name in config["runs"]:
        run = resolve_run(config["runs"], name)
        errors = sorted(validator.iter_errors(run), key=lambda e: list(e.absolute_path))
        if errors:
            raise ConfigError("config/config.yaml: " + _message(errors[0], f"runs.{name}"))
        resolved[name] = run
    for name, run in resolved.items():
        _check_variant(name, run, resolved)
        _check_revisions(name, run, "runs")
    if config["default_run"] not in resolved:
        raise ConfigError(f"default_run: '{config['default_run']}' is not one of the runs "
                          f"({', '.join(sorted(resolved))})")
    return resolved


def _check_variant(name: str, run: dict, runs: dict) -> None:
    """A variant run names an existing main run, and one measured by its final probe probes it."""
    main = run.get("ablation_of")
    if main is not None and main not in runs:
        raise ConfigError(f"runs.{name}.ablation_of: no run '{main}' (runs: {', '.join(sorted(runs))})")
    table = run.get("table")
    if table is None:
        return
    if main is None:
        raise ConfigError(f"runs.{name}.table: only a variant run (ablation_of: <main run>) is shown in a table")
    last = len(run["bootstrap"]["iterations"])
    if table != "table4" and last not in run.get("probes", {}).get("stages", []):
        raise ConfigError(f"runs.{name}.table: {table} measures the run by the probe of its final synthesizer: "
                          f"add {last} to runs.{name}.probes.stages")


def _check_revisions(name: str, run: dict, section: str) -> None:
    """Each pinned model is a model of the run loaded from the hub (not one served by an API)."""
    used = set(run["models"].values()) | {src["model"] for src in run.get("scorer", {}).get("data", {}).get(
        "sources", []) if "model" in src}
    api = {run["models"][role] for role, backend in run["backends"].items()
           if backend.get("backend") == "openai" and role in run["models"]}
    for model in run.get("revisions") or {}:
        if model not in used:
            raise ConfigError(f"{section}.{name}.revisions.{model}: not a model of this run "
                              f"(its models: {', '.join(sorted(used))})")
        if model in api:
            raise ConfigError(f"{section}.{name}.revisions.{model}: served through an OpenAI-compatible API, "
                              "not loaded from the hub; it has no revision to pin")


def validate_soda(config: dict) -> dict[str, dict]:
    """Every SODA run (`soda_runs:`) after its `extends:` chain, checked against $defs/soda_run."""
    schema = load_schema()
    validator = jsonschema.Draft202012Validator({**schema["$defs"]["soda_run"], "$defs": schema["$defs"]})
    runs, resolved = config.get("soda_runs") or {}, {}
    for name in runs:
        run = resolve_run(runs, name, section="soda_runs")
        errors = sorted(validator.iter_errors(run), key=lambda e: list(e.absolute_path))
        if errors:
            raise ConfigError("config/config.yaml: " + _message(errors[0], f"soda_runs.{name}"))
        _check_revisions(name, run, "soda_runs")
        resolved[name] = run
    for name, run in resolved.items():
        main = run.get("ablation_of")
        if main is not None and main not in resolved:
            raise ConfigError(f"soda_runs.{name}.ablation_of: no SODA run '{main}' "
                              f"(runs: {', '.join(sorted(resolved))})")
    return resolved


def load(path: str | Path) -> dict[str, dict]:
    with open(path, encoding="utf-8") as f:
        return validate(yaml.safe_load(f))
