"""Standalone snippets: extract + filter on a fixture package, every kept snippet defined
in the sandbox (tests/fixtures/standalone has relative imports, future annotations, a
TYPE_CHECKING block, an import fallback, methods, module constants and helpers)."""
from pathlib import Path

import pytest

from scoder.pool.define import define_snippets, summarize
from scoder.pool.extract import extract_functions
from scoder.pool.filter import filter_functions

FIXTURE = Path(__file__).parent / "fixtures" / "standalone"
BANNED = ["os", "sys", "subprocess"]


@pytest.fixture(scope="module")
def pool():
    records, _, _ = extract_functions([{"type": "tree", "path": str(FIXTURE), "name": "fx"}])
    kept, stats, skipped = filter_functions(records, banned_imports=BANNED)
    return records, {r["qualname"]: r for r in kept}, stats, {e["id"].split(":")[2]: e for e in skipped}


def test_every_kept_snippet_defines_in_the_sandbox(pool):
    records, kept, stats, skipped = pool
    assert sorted(kept) == ["Shape.diagonal", "_double", "area", "area_in_cm", "circle", "dumps", "metres",
                            "quadruple", "ring", "scale", "units", "words"]
    assert stats["define_check"] == {"checked": 12, "pass": 12, "missing_module": 0, "error": 0, "rate": 1.0,
                                     "rate_installed": 1.0, "errors": {}}
    assert {q: e["reason"] for q, e in skipped.items()} == {
        "broken": "unresolved_name", "Shape.perimeter": "method", "Shape.triangle": "method",
        "Shape.__repr__": "method"}
    assert skipped["broken"]["detail"] == "undefined_helper"
    assert all(r["define"] == "pass" for r in kept.values())


def test_module_context_made_explicit(pool):
    _, kept, _, _ = pool
    area = kept["area"]["code"]
    # __future__ first; the relative import resolved in the package; constants copied in module order
    assert area.startswith("from __future__ import annotations\n")
    assert "from shapes._units import SCALE" in area and "import math" in area
    assert area.index("UNIT = 1.0") < area.index("FACTOR = UNIT * SCALE") < area.index("def area(")
    # a type-checking-only import is never copied: with future annotations the annotation needs nothing
    assert "typing_only_module" not in kept["scale"]["code"] and "Polygon" in kept["scale"]["code"]
    # the import fallback stays whole; a multi-line constant keeps its source
    assert "try:\n    import _no_such_speedups as json\nexcept ImportError:\n    import json" in kept["dumps"]["code"]
    assert 'NAMES = {\n    "circle": 0,' in kept["dumps"]["code"]
    # module-level helpers and computed values are imported from the function's own module
    assert "from shapes.geometry import _double" in kept["quadruple"]["code"]
    assert "from shapes.geometry import _WORD" in kept["words"]["code"]
    assert "from shapes import CM" in kept["area_in_cm"]["code"]  # found through the star import
    # two levels up, and `from .. import module`
    assert "from shapes.geometry import area" in kept["ring"]["code"]
    assert "from shapes import _units" in kept["metres"]["code"]
    # a relative import inside the function's body too
    assert "    from shapes.geometry import area as circle_area\n    return circle_area(r)" in kept["circle"]["code"]
    # a static method loses its decorator; the context fields are not carried on
    assert kept["Shape.diagonal"]["code"].count("@staticmethod") == 0
    assert "module_imports" not in kept["area"] and kept["area"]["module"] == "shapes.geometry"


def test_methods_kept_when_asked(pool):
    records, _, _, _ = pool
    kept, stats, _ = filter_functions(records, banned_imports=BANNED, keep_methods=True)
    assert {"Shape.perimeter", "Shape.triangle", "Shape.__repr__"} <= {r["qualname"] for r in kept}
    assert stats["dropped"]["method"] == 0 and stats["define_check"]["rate"] == 1.0


def test_define_check_tells_errors_from_missing_modules():
    results = define_snippets([
        {"code": "import math\n\n\ndef f():\n    return math.pi\n", "name": "f"},
        {"code": "import no_such_module_anywhere\n\n\ndef g():\n    return 1\n", "name": "g"},
        {"code": "from json import no_such_name\n\n\ndef h():\n    return 1\n", "name": "h"},
        {"code": "@undefined_decorator\ndef k():\n    return 1\n", "name": "k"},
        {"code": "import json.no_such_submodule\n\n\ndef m():\n    return 1\n", "name": "m"},
        {"code": "print('noise')\n\n\ndef n():\n    return 1\n", "name": "n"},
    ], batch=4)
    assert [r["status"] for r in results] == ["pass", "missing_module", "error", "error", "error", "pass"]
    assert results[2]["detail"].startswith("ImportError") and results[3]["detail"].startswith("NameError")
    assert summarize(results)["rate"] == round(2 / 6, 4) and summarize(results)["rate_installed"] == 0.4


def test_define_check_survives_a_snippet_that_kills_its_interpreter():
    crash = "import os\nos.kill(os.getpid(), 9)\n\n\ndef c():\n    return 1\n"
    ok = "def f():\n    return 1\n"
    results = define_snippets([{"code": ok, "name": "f"}, {"code": crash, "name": "c"}, {"code": ok, "name": "f"}])
    assert [r["status"] for r in results] == ["pass", "error", "pass"]
    assert results[1]["detail"].startswith("InterpreterDied")


def test_relative_imports_of_stack_rows_stay_unresolved(tmp_path):
    import pandas as pd

    code = 'from .util import helper\n\n\ndef f(x):\n    """Uses a relative import."""\n    return helper(x)\n'
    pd.DataFrame({"content": [code], "max_stars_repo_name": ["a/b"],
                  "max_stars_repo_path": ["pkg/mod.py"]}).to_parquet(tmp_path / "s.parquet")
    records, _, _ = extract_functions([{"type": "stack", "path": str(tmp_path / "s.parquet")}])
    assert records[0]["module"] is None and records[0]["module_imports"] == []
    kept, stats, skipped = filter_functions(records, banned_imports=BANNED, define_check=False)
    assert kept == [] and skipped == [{"id": records[0]["id"], "reason": "unresolved_name", "detail": "helper"}]
