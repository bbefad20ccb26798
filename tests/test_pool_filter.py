"""Filtering: one test per drop reason, and supplemented imports make the code define alone."""
import pytest

from scoder.pool.filter import filter_functions

BANNED = ["os", "sys", "subprocess"]


def _run(code, **kw):
    kept, stats, skipped = filter_functions([{"id": "f", "name": "f", "code": code, **kw}], banned_imports=BANNED,
                                            max_lines=12, define_check=False)
    reasons = [k for k, v in stats["dropped"].items() if v]
    assert reasons == [e["reason"] for e in skipped]  # the skip log lists what the counts count
    return kept, reasons


GOOD = 'def double(x):\n    """Twice x."""\n    return 2 * x\n'


def test_good_function_kept():
    kept, reasons = _run(GOOD)
    assert reasons == [] and kept[0]["code"] == GOOD and kept[0]["imports_added"] == []


@pytest.mark.parametrize("code, reason", [
    ('def f(x:\n    """Oops."""\n    return x\n', "syntax_error"),
    ('def f(a, a):\n    """Duplicate parameter: parses, does not compile."""\n    return a\n', "syntax_error"),
    ("x = 1\ny = 2\nz = x + y\n", "no_function"),
    ('def f(x): return x\n', "too_short"),
    ('def f(x):\n    """Long."""\n' + "    x += 1\n" * 12 + "    return x\n", "too_long"),
    ('def f(x):\n    """No return."""\n    print(x)\n', "no_return_value"),
    ('def f(x):\n    """Bare return."""\n    if x:\n        return\n    print(x)\n', "no_return_value"),
    ('def f(x):\n    """Returns None."""\n    print(x)\n    return None\n', "no_return_value"),
    ('def f(x):\n    """Only the nested function returns."""\n    def g():\n        return x\n    g()\n', "no_return_value"),
    ('def f(p):\n    """Imports a banned module."""\n    import os.path\n    return os.path.exists(p)\n', "banned_import"),
    ('def f(p):\n    """Imports from a banned module."""\n    from subprocess import run\n    return run(p)\n', "banned_import"),
    ('def f(p):\n    """Needs os."""\n    x = os.getcwd()\n    return x + p\n', "banned_dependency"),
    ('def f(x):\n    """Needs a helper nothing provides."""\n    return helper(x)\n', "unresolved_name"),
])
def test_drop_reasons(code, reason):
    kept, reasons = _run(code)
    assert kept == [] and reasons == [reason]


def test_banned_dependency_from_module_imports():
    code = 'def f():\n    """Uses argv of the module\'s import."""\n    return len(argv)\n'
    kept, reasons = _run(code, module_imports=["from sys import argv"])
    assert reasons == ["banned_dependency"]


def test_imports_supplemented_and_code_defines_alone():
    code = (
        'def norm(v, mode=OD):\n    """Euclidean norm, rounded."""\n'
        '    s = stats.fsum(x * x for x in v)\n    return round(math.sqrt(s), DIGITS), mode.__name__\n'
    )
    imports = ["import math", "import statistics as stats", "from collections import OrderedDict as OD"]
    kept, stats, _ = filter_functions([{"id": "f", "name": "norm", "code": code, "module_imports": imports,
                                        "module_constants": {"DIGITS": "DIGITS = 3"}}], banned_imports=BANNED)
    (rec,) = kept
    assert rec["imports_added"] == [
        "from collections import OrderedDict as OD", "import math", "import statistics as stats"]
    assert rec["constants_added"] == ["DIGITS = 3"] and rec["define"] == "pass"
    assert stats["define_check"]["rate"] == 1.0  # defined in the sandbox, in a fresh namespace


def test_unresolved_names_dropped():
    kept, reasons = _run('def f(x):\n    """Uses a helper."""\n    return helper(x)\n',
                         module_imports=["from .local import helper"])  # relative: cannot stand alone
    assert kept == [] and reasons == ["unresolved_name"]


def test_failing_definition_dropped_by_the_define_check():
    code = 'def f(x, y=DEFAULT):\n    """Default from a constant that fails."""\n    return x + y\n'
    kept, stats, skipped = filter_functions([{"id": "f", "name": "f", "code": code,
                                              "module_constants": {"DEFAULT": "DEFAULT = 1 // 0"}}],
                                            banned_imports=BANNED)
    assert kept == [] and stats["dropped"]["define_error"] == 1
    assert skipped[0]["detail"].startswith("ZeroDivisionError") and stats["define_check"]["rate"] == 0.0


def test_stdlib_module_supplemented_without_module_imports():
    code = 'def f(s):\n    """Words of s."""\n    return re.findall(r"\\w+", s)\n'
    kept, _ = _run(code)
    assert kept[0]["imports_added"] == ["import re"] and kept[0]["code"].startswith("import re\n\n\ndef f(s):")


def test_worker_processes_change_nothing(monkeypatch):
    import sysconfig
    from pathlib import Path

    import scoder.pool.filter as filter_module
    from scoder.pool.extract import extract_functions

    records, _, _ = extract_functions([{"type": "tree", "path": str(Path(sysconfig.get_paths()["stdlib"]) / "email")}])
    one = filter_functions(records, banned_imports=BANNED, define_check=False)
    monkeypatch.setattr(filter_module, "CHUNK_RECORDS", 50)
    two = filter_functions(records, banned_imports=BANNED, workers=2, define_check=False)
    assert two == one and 0 < one[1]["kept"] < len(records) and one[1]["dropped"]["no_return_value"] > 0
