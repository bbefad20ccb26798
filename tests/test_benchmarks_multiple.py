"""MultiPL-E from a hand-written local file: completions are canned, the programs run
in the sandbox (JavaScript, C++ and TypeScript)."""
import json
import shutil

import pandas as pd
import pytest

from benchmark_fakes import CannedGenerator
from scoder.benchmarks import Unavailable, evaluate_benchmark
from scoder.benchmarks import multiple
from scoder.benchmarks.common import Protocol

JS = {"name": "HumanEval_0_add", "language": "js",
      "prompt": "//Add two numbers.\nfunction add(a, b){\n",
      "tests": "const assert = require('node:assert');\n\nfunction test() {\n  let candidate = add;\n"
               "  assert.deepEqual(candidate(2, 3),5);\n  assert.deepEqual(candidate(-1, 1),0);\n}\n\ntest();",
      "stop_tokens": ["\nfunction ", "\n/*", "\n//", "\nconsole.log"]}
JS2 = {**JS, "name": "HumanEval_1_double", "prompt": "//Double a number.\nfunction double(x){\n",
       "tests": "const assert = require('node:assert');\n\nfunction test() {\n  let candidate = double;\n"
                "  assert.deepEqual(candidate(4),8);\n}\n\ntest();"}
CPP = {"name": "HumanEval_0_add", "language": "cpp",
       "prompt": "#include<assert.h>\n#include<bits/stdc++.h>\n// Add two numbers.\nlong add(long a, long b) {\n",
       "tests": "}\nint main() {\n    auto candidate = add;\n    assert(candidate((2), (3)) == (5));\n"
                "    assert(candidate((-1), (1)) == (0));\n}\n",
       "stop_tokens": ["\n}"]}
CPP2 = {**CPP, "name": "HumanEval_1_double",
        "prompt": "#include<assert.h>\n#include<bits/stdc++.h>\n// Double a number.\nlong double_it(long x) {\n",
        "tests": "}\nint main() {\n    auto candidate = double_it;\n    assert(candidate((4)) == (8));\n}\n"}
# the completion the canned model gives each prompt: add is right, double is wrong;
# text after the stop token must be cut (else the js one would not parse)
# (MultiPL-E's C++ tests open with the "}" that the stop token "\n}" cuts off)
ANSWERS = {JS["prompt"]: "  return a + b;\n}\n\nfunction junk( {",
           JS2["prompt"]: "  return x + 2;\n}\n",
           CPP["prompt"]: "    return a + b;\n}\nthis is not C++",
           CPP2["prompt"]: "    return x * 3;\n}\n"}


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "multiple.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in (JS, JS2, CPP, CPP2)))
    return path


def _settings(path, **extra):
    return {"workers": 2, "multipl_e": {"path": str(path), "languages": ["js", "cpp"], **extra}}


def test_correct_completion_passes_and_wrong_one_fails(data):
    gen = CannedGenerator(lambda prompt, j: ANSWERS[prompt])
    result = evaluate_benchmark("multipl_e", gen, _settings(data))
    assert set(result["scores"]) == {"js", "cpp"}
    for lang in ("js", "cpp"):
        assert result["scores"][lang]["pass@1"] == 50.0
        assert result["scores"][lang]["n"] == 2
    passed = {(r["language"], r["task_id"]): r["passed"] for r in result["records"]}
    assert passed == {("js", "HumanEval_0_add"): True, ("js", "HumanEval_1_double"): False,
                      ("cpp", "HumanEval_0_add"): True, ("cpp", "HumanEval_1_double"): False}
    wrong = next(r for r in result["records"] if r["language"] == "cpp" and not r["passed"])
    assert wrong["reason"].startswith("runtime_error")  # the assert aborts
    assert all(p in ANSWERS for p in gen.prompts)  # the raw prompt is completed (base style)


def test_pass_at_k_over_samples(data):
    # sample 0 right, sample 1 wrong for every problem: pass@1 50, pass@2 100
    right = {JS2["prompt"]: "  return x * 2;\n}\n", CPP2["prompt"]: "    return x * 2;\n}\n"}
    gen = CannedGenerator(lambda prompt, j: right.get(prompt, ANSWERS[prompt]) if j == 0 else "  return 0;\n}\n")
    settings = {**_settings(data), "sampling": {"n": 2, "temperature": 0.2, "top_p": 0.95, "k": [1, 2]}}
    result = evaluate_benchmark("multipl_e", gen, settings)
    for lang in ("js", "cpp"):
        assert result["scores"][lang]["pass@1"] == 50.0
        assert result["scores"][lang]["pass@2"] == 100.0
        assert result["scores"][lang]["samples_per_problem"] == 2


def test_hub_layout_limit_and_absent_languages(tmp_path):
    (tmp_path / "humaneval-js" / "test").mkdir(parents=True)
    pd.DataFrame([JS2, JS]).to_parquet(tmp_path / "humaneval-js" / "test" / "0000.parquet")
    (tmp_path / "humaneval-cpp.jsonl").write_text(json.dumps(CPP) + "\n")
    (tmp_path / "humaneval-rs.jsonl").write_text(json.dumps({**JS, "language": "rs"}) + "\n")
    problems = multiple.load_problems({"path": str(tmp_path), "languages": ["js", "cpp", "rs", "go"], "limit": 1})
    assert {k: [p["name"] for p in v] for k, v in problems.items()} == {
        "js": ["HumanEval_0_add"], "cpp": ["HumanEval_0_add"], "rs": ["HumanEval_0_add"]}
    assert problems["js"][0]["stop_tokens"] == JS["stop_tokens"]  # a list, not a numpy array
    gen = CannedGenerator(lambda prompt, j: ANSWERS.get(prompt, "}\n"))
    result = multiple.evaluate(gen, {"path": str(tmp_path), "languages": ["js", "rs", "go", "c"]}, Protocol(workers=1))
    assert set(result["scores"]) == {"js"} and result["scores"]["js"]["n"] == 2
    assert "no runner" in result["absent"]["rs"]
    assert "no go problems" in result["absent"]["go"]
    # SODA reports C, which MultiPL-E does not translate: absent, saying so
    assert "not C" in result["absent"]["c"]


# MultiPL-E's TypeScript layout (humaneval_to_ts.py): typed signature, node:assert tests
TS = {"name": "HumanEval_0_add", "language": "ts", "stop_tokens": ["\nfunction ", "\n/*", "\n//", "\nclass"],
      "prompt": "//Add two numbers.\nfunction add(a: number, b: number): number {\n",
      "tests": "declare var require: any;\nconst assert = require('node:assert');\n\nfunction test() {\n"
               "  let candidate = add;\n  assert.deepEqual(candidate(2, 3),5);\n  assert.deepEqual(candidate(-1, 1),0);\n"
               "}\n\ntest();"}


@pytest.mark.skipif(shutil.which("tsc") is None, reason="tsc is not installed (./install.sh installs it from npm)")
def test_typescript_compiles_with_tsc_and_runs_on_node(tmp_path):
    """As MultiPL-E's eval_ts: tsc --target esnext, then node; a wrong answer and a type
    error (tsc exits non-zero though it still emits JavaScript) both fail."""
    path = tmp_path / "humaneval-ts.jsonl"
    rows = [{**TS, "name": f"HumanEval_{i}_add", "prompt": TS["prompt"].replace("add", f"add{i}"),
             "tests": TS["tests"].replace("= add", f"= add{i}")} for i in range(3)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    answers = ["  return a + b;\n}\n\nfunction junk( {", "  return a - b;\n}\n",
               "  const s: string = a + b;\n  return a + b;\n}\n"]
    gen = CannedGenerator(lambda prompt, j: answers[[r["prompt"] for r in rows].index(prompt)])
    result = multiple.evaluate(gen, {"path": str(path), "languages": ["ts"]}, Protocol(workers=2))
    assert result["absent"] == {} and result["scores"]["ts"]["n"] == 3
    verdicts = {r["task_id"]: (r["passed"], r["reason"]) for r in result["records"]}
    assert verdicts["HumanEval_0_add"] == (True, "pass")
    assert not verdicts["HumanEval_1_add"][0] and "AssertionError" in verdicts["HumanEval_1_add"][1]
    assert not verdicts["HumanEval_2_add"][0] and verdicts["HumanEval_2_add"][1].startswith("compile_error")
    assert "TS2322" in verdicts["HumanEval_2_add"][1]  # tsc's message, read from its stdout


def test_no_data_is_absent_with_reason(tmp_path):
    with pytest.raises(Unavailable, match="no local data"):
        evaluate_benchmark("multipl_e", None, _settings(tmp_path / "missing"))
    with pytest.raises(Unavailable, match="not configured"):
        evaluate_benchmark("multipl_e", None, {})
