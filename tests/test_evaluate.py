"""HumanEval evaluation: canonical solutions pass, empty ones fail, extraction keeps the right code."""
import pytest

from scoder.evaluate import (INSTRUCTION_PREFIX, RESPONSE_PREFIX, build_prompt, check_solution,
                             evaluate_humaneval, evaluate_with_evalplus, extract_solution,
                             load_humaneval, to_evalplus_file)
from scoder.io import read_jsonl


@pytest.fixture(scope="module")
def humaneval():
    return load_humaneval()


@pytest.fixture(scope="module")
def strlen(humaneval):
    return humaneval[23]


def test_load_humaneval_in_task_order(humaneval):
    assert len(humaneval) == 164
    assert [p["task_id"] for p in load_humaneval(limit=12)] == [f"HumanEval/{i}" for i in range(12)]
    assert {"prompt", "entry_point", "canonical_solution", "test"} <= set(humaneval[0])


def test_canonical_solutions_all_pass(humaneval):
    # base style: the canonical solution is exactly the completion of the prompt
    completions = {p["task_id"]: p["canonical_solution"] for p in humaneval}
    report = evaluate_humaneval(humaneval, completions, "base", workers=2)
    failed = [t for t in report["per_task"] if not t["passed"]]
    assert failed == [] and report["pass@1"] == 100.0 and report["n"] == 164
    assert report["dataset"].startswith("HumanEval")


def test_empty_and_missing_completions_score_zero(humaneval):
    problems = humaneval[:20]
    completions = {p["task_id"]: "" for p in problems[:15]}  # the last 5 have none
    report = evaluate_humaneval(problems, completions, "base", workers=2)
    assert report["pass@1"] == 0.0 and report["passed"] == 0 and report["n"] == 20
    assert [t["reason"] for t in report["per_task"][15:]] == ["no completion"] * 5


def test_wrong_and_hanging_solutions_fail_with_a_reason(strlen):
    wrong = check_solution(strlen, "def strlen(string):\n    return 0\n")
    assert not wrong["passed"] and wrong["reason"] == "AssertionError"
    hang = check_solution(strlen, "def strlen(string):\n    while True:\n        pass\n", timeout=1.5)
    assert not hang["passed"] and "timeout" in hang["reason"]


def test_base_completion_is_cut_at_stop_sequences(strlen):
    completion = ("    return len(string)\n\n\ndef unrelated():\n    raise SystemExit(1)\n"
                  "\nprint(strlen('abc'))\n")
    solution = extract_solution(strlen, completion, "base")
    assert solution.startswith(strlen["prompt"])
    assert solution[len(strlen["prompt"]):].strip() == "return len(string)"
    assert check_solution(strlen, solution)["passed"]


def test_build_prompt_follows_evalplus(strlen):
    assert build_prompt(strlen, "base") == strlen["prompt"]
    user, assistant = build_prompt(strlen, "instruct")
    assert user["role"] == "user" and user["content"].startswith(INSTRUCTION_PREFIX)
    assert strlen["prompt"].strip() in user["content"]
    assert assistant == {"role": "assistant", "content": RESPONSE_PREFIX + "\n```python\n"}
    with pytest.raises(ValueError):
        build_prompt(strlen, "chat")


@pytest.mark.parametrize("completion", [
    # continues the prefilled ```python line of the response prefix
    "def strlen(string: str) -> int:\n    return len(string)\n```\nThis uses ```len```.",
    # a whole answer: prose, a python block with demo code reading stdin, prose
    "Sure!\n```python\nimport sys\n\ndef strlen(string):\n    return len(string)\n\n"
    "print(strlen(input()))\n```\nDone. Example:\n```python\nstrlen('x')\n```",
    # no fence at all
    "def strlen(s):\n    return len(s)\n",
])
def test_instruct_answers_yield_a_passing_program(strlen, completion):
    solution = extract_solution(strlen, completion, "instruct")
    assert "```" not in solution and "input()" not in solution
    assert check_solution(strlen, solution)["passed"]


def test_unsanitized_demo_code_would_fail(strlen):
    # why extraction sanitizes by default: the demo line waits for stdin that never comes
    completion = "```python\ndef strlen(s):\n    return len(s)\n\nprint(strlen(input()))\n```"
    raw = extract_solution(strlen, completion, "instruct", sanitize=False)
    assert "input()" in raw and not check_solution(strlen, raw)["passed"]


def test_evalplus_base_and_plus_on_a_humaneval_plus_file(tmp_path, humaneval):
    plain = to_evalplus_file(humaneval[:3], tmp_path / "plain.jsonl")
    rows = read_jsonl(plain)
    assert [r["task_id"] for r in rows] == ["HumanEval/0", "HumanEval/1", "HumanEval/2"]
    assert rows[0]["base_input"] == [] and rows[0]["contract"] == "" and rows[0]["atol"] == 0
    with pytest.raises(ValueError, match="base_input"):  # EvalPlus would pass everything
        evaluate_with_evalplus(plain, {})

    truncate, strlen = humaneval[2], humaneval[23]
    plus = to_evalplus_file([
        dict(truncate, base_input=[[3.5], [1.33]], plus_input=[[0.25], [7.75]], atol=1e-6),
        dict(strlen, base_input=[[""], ["asdasnakj"]], plus_input=[["a" * 100]])],
        tmp_path / "plus.jsonl")
    solutions = {truncate["task_id"]: truncate["prompt"] + truncate["canonical_solution"],
                 # right on the base inputs, wrong on the longer plus input
                 strlen["task_id"]: "def strlen(string):\n    return min(len(string), 9)\n"}
    report = evaluate_with_evalplus(plus, solutions, workers=1)
    assert report["base"] == 100.0 and report["plus"] == 50.0 and report["n"] == 2
    assert [t["plus"] for t in report["per_task"]] == ["pass", "fail"]
