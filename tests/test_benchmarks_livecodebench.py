"""LiveCodeBench adapter on hand-written problems in code_generation_lite's layout:
stdin/stdout and functional (LeetCode) tests, released private-test encoding, release
files and date windows read as lcb_runner reads them."""
import base64
import json
import pickle
import zlib

import pytest
from benchmark_fakes import CannedGenerator

from scoder.benchmarks import evaluate_benchmark
from scoder.benchmarks.common import Protocol, Unavailable
from scoder.benchmarks.livecodebench import (SYSTEM_MESSAGE, WITH_STARTER, WITHOUT_STARTER, build_prompt,
                                             check_solution, count_problems, decode_problem, extract_solution,
                                             load_problems, release_files)
from scoder.io import write_jsonl


def released(tests):
    """Private tests as the dataset ships them: base64(zlib(pickle(JSON text)))."""
    return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(tests)))).decode()


def stdin_test(i, o):
    return {"input": i, "output": o, "testtype": "stdin"}


ROWS = [
    {"question_title": "A + B", "question_content": "Read two integers A and B and print A+B.",
     "platform": "atcoder", "question_id": "abc001_a", "contest_id": "abc001", "contest_date": "2023-08-05T00:00:00",
     "starter_code": "", "difficulty": "easy",
     "public_test_cases": json.dumps([stdin_test("1 2\n", "3\n")]),
     "private_test_cases": released([stdin_test("10 -4\n", "6\n"), stdin_test("0 0\n", "0\n")]),
     "metadata": "{}"},
    {"question_title": "Two Sum", "question_content": "Return the indices of the two numbers adding up to target.",
     "platform": "leetcode", "question_id": "1", "contest_id": "weekly-contest-1", "contest_date": "2024-03-02T00:00:00",
     "starter_code": "class Solution:\n    def twoSum(self, nums: List[int], target: int) -> List[int]:\n        ",
     "difficulty": "medium",
     "public_test_cases": json.dumps([{"input": "[2, 7, 11, 15]\n9", "output": "[0, 1]", "testtype": "functional"}]),
     "private_test_cases": json.dumps([{"input": "[3, 2, 4]\n6", "output": "[1, 2]", "testtype": "functional"}]),
     "metadata": json.dumps({"func_name": "twoSum"})},
    {"question_title": "Mean", "question_content": "Read N then N integers; print their mean, then N.",
     "platform": "codeforces", "question_id": "1000A", "contest_id": "1000", "contest_date": "2024-11-20T00:00:00",
     "starter_code": "", "difficulty": "hard",
     "public_test_cases": json.dumps([stdin_test("4\n1 2 3 4\n", "2.5\n4\n")]),
     "private_test_cases": released([stdin_test("2\n1 2\n", "1.50000\n2")]),
     "metadata": "{}"},
]

SOLUTIONS = {
    "abc001_a": "a, b = map(int, input().split())\nprint(a + b)\n",
    "1": ("class Solution:\n    def twoSum(self, nums, target):\n        seen = {}\n"
          "        for i, x in enumerate(nums):\n            if target - x in seen:\n"
          "                return (seen[target - x], i)\n            seen[x] = i\n"),
    # open(0) reads the real stdin; Decimal comparison accepts 1.5 for 1.50000
    "1000A": "data = open(0).read().split()\nn = int(data[0])\nprint(sum(map(int, data[1:])) / n)\nprint(n)\n",
}


@pytest.fixture()
def lcb_dir(tmp_path):
    """A code_generation_lite folder for release v4: test.jsonl .. test4.jsonl."""
    write_jsonl(tmp_path / "test.jsonl", ROWS[:1])
    write_jsonl(tmp_path / "test2.jsonl", ROWS[1:2])
    write_jsonl(tmp_path / "test3.jsonl", [])
    write_jsonl(tmp_path / "test4.jsonl", ROWS[2:])
    return tmp_path


def test_release_files_are_read_and_tests_decoded(lcb_dir):
    problems, source = load_problems({"path": str(lcb_dir), "release": "release_v4"})
    # ordered by question_id, as lcb_runner's runner sorts the benchmark
    assert [p["question_id"] for p in problems] == ["1", "1000A", "abc001_a"]
    assert problems[2]["private_test_cases"] == [stdin_test("10 -4\n", "6\n"), stdin_test("0 0\n", "0\n")]
    assert problems[0]["metadata"] == {"func_name": "twoSum"}
    assert "LiveCodeBench release_v4: test.jsonl, test2.jsonl, test3.jsonl, test4.jsonl" in source
    window, _ = load_problems({"path": str(lcb_dir), "end_date": "2024-06-30"})
    assert [p["question_id"] for p in window] == ["1", "abc001_a"]
    # release_v5 needs test5.jsonl: absent, naming the missing file
    with pytest.raises(Unavailable, match="test5.jsonl"):
        load_problems({"path": str(lcb_dir), "release": "release_v5"})


def test_version_tags_map_to_files_as_the_loading_script(tmp_path):
    """code_generation_lite: release_vN is cumulative, vN one release, vA_vB a range."""
    assert release_files("release_v1") == ["test.jsonl"]
    assert release_files("release_v4") == ["test.jsonl", "test2.jsonl", "test3.jsonl", "test4.jsonl"]
    assert release_files("v1") == ["test.jsonl"]
    assert release_files("v5") == ["test5.jsonl"]
    assert release_files("v4_v6") == ["test4.jsonl", "test5.jsonl", "test6.jsonl"]
    for name in ("test.jsonl", "test2.jsonl", "test3.jsonl", "test10.jsonl", "notes.jsonl"):
        (tmp_path / name).write_text("")
    assert release_files("release_latest", tmp_path) == ["test.jsonl", "test2.jsonl", "test3.jsonl", "test10.jsonl"]
    for bad in ("v0", "4", "release_v", "v6_v4", "latest"):
        with pytest.raises(ValueError, match="version tag|names no release"):
            release_files(bad)


def row(qid, date, difficulty="easy"):
    return {**ROWS[0], "question_id": qid, "contest_date": date, "difficulty": difficulty}


def test_the_learned_weights_window_is_empty_in_the_first_release_only(tmp_path):
    """SCoder's weights are fit on LiveCodeBench 2024-10..2025-01: release v1 (May 2023 -
    Mar 2024) holds none of it, release v5 (which adds Oct 2024 - Jan 2025) does.  The
    count reads no test; the end date is midnight, as lcb_runner compares date-times."""
    write_jsonl(tmp_path / "test.jsonl", [row("abc300_a", "2023-05-13T00:00:00"), row("abc340_b", "2024-02-10T00:00:00")])
    for i in (2, 3, 4):
        write_jsonl(tmp_path / f"test{i}.jsonl", [row(f"abc{350 + i}_a", f"2024-0{i + 3}-06T00:00:00")])
    write_jsonl(tmp_path / "test5.jsonl", [row("abc380_a", "2024-11-16T00:00:00"), row("3400", "2025-01-04T14:30:00"),
                                           row("abc390_c", "2025-01-31T00:00:00"), row("abc391_d", "2025-01-31T12:00:00"),
                                           row("abc395_a", "2025-03-01T00:00:00")])
    window = {"path": str(tmp_path), "start_date": "2024-10-01", "end_date": "2025-01-31"}
    assert count_problems({**window, "release": "release_v1"}) == 0
    assert count_problems({**window, "release": "release_v4"}) == 0
    assert count_problems({**window, "release": "release_v5"}) == 3
    assert count_problems({**window, "release": "v5"}) == 3
    assert count_problems({**window, "release": "release_v5", "limit": 2}) == 2
    problems, source = load_problems({**window, "release": "release_v5"})
    assert [p["question_id"] for p in problems] == ["3400", "abc380_a", "abc390_c"]
    assert source.endswith("2024-10-01 to 2025-01-31)")
    assert count_problems({"path": str(tmp_path), "release": "release_v5"}) == 10
    # a release whose file is missing is absent, naming it
    with pytest.raises(Unavailable, match="test6.jsonl"):
        count_problems({**window, "release": "release_v6"})
    # one file of the same columns (release ignored); a malformed date names the file
    write_jsonl(tmp_path / "one.jsonl", [row("x", "2024-12-01T00:00:00"), row("y", "2023-12-01T00:00:00")])
    assert count_problems({**window, "path": str(tmp_path / "one.jsonl")}) == 1
    write_jsonl(tmp_path / "bad.jsonl", [row("z", "Dec 2024")])
    with pytest.raises(ValueError, match="bad.jsonl.*not an ISO date"):
        count_problems({**window, "path": str(tmp_path / "bad.jsonl")})


def test_count_ignores_contest_date_inside_question_text(tmp_path):
    """A question quoting the key (escaped in JSON) is not a row of its own."""
    tricky = row("q1", "2024-12-01T00:00:00")
    tricky["question_content"] = 'Parse {"contest_date": "2024-12-02"} and print it.'
    write_jsonl(tmp_path / "test.jsonl", [tricky, row("q2", "2024-12-03T00:00:00")])
    assert count_problems({"path": str(tmp_path), "release": "release_v1", "start_date": "2024-10-01"}) == 2
    assert count_problems({"path": str(tmp_path), "release": "release_v1", "start_date": "2024-12-02"}) == 1


def by_id(lcb_dir):
    return {p["question_id"]: p for p in load_problems({"path": str(lcb_dir)})[0]}


def test_released_private_tests_may_not_unpickle_objects():
    evil = base64.b64encode(zlib.compress(pickle.dumps(print))).decode()
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        decode_problem({**ROWS[0], "private_test_cases": evil})


def test_prompts_follow_lcb_runner(lcb_dir):
    problems = by_id(lcb_dir)
    system, user = build_prompt(problems["abc001_a"], Protocol())
    assert system == {"role": "system", "content": SYSTEM_MESSAGE}
    assert user["content"].startswith("### Question:\nRead two integers")
    assert f"### Format: {WITHOUT_STARTER}\n```python\n# YOUR CODE HERE\n```" in user["content"]
    _, user = build_prompt(problems["1"], Protocol())
    assert f"### Format: {WITH_STARTER}\n```python\nclass Solution:" in user["content"]
    assert user["content"].endswith("### Answer: (use the provided format with backticks)\n\n")
    # the answer's last code block is the program; no block at all is no program
    answer = "Idea:\n```python\nx = 1\n```\nFinal:\n```python\nprint(2)\n```\n"
    assert extract_solution(answer, "instruct") == "print(2)\n"
    assert extract_solution("print(2)", "instruct") == ""
    with pytest.raises(Unavailable, match="few_shot_dir"):
        build_prompt(problems["abc001_a"], Protocol(style="base"))


def test_right_solutions_pass_stdin_and_functional_tests(lcb_dir):
    problems = by_id(lcb_dir)
    for p in problems.values():
        assert check_solution(p, SOLUTIONS[p["question_id"]]) == {"passed": True, "reason": "passed"}, p["question_id"]
    # lcb_runner's import preamble: deque without an import, sys.stdin.buffer
    assert check_solution(problems["abc001_a"], "q = deque(map(int, sys.stdin.buffer.read().split()))\nprint(q[0] + q[1])")["passed"]


def test_wrong_crashing_and_slow_solutions_fail_with_a_reason(lcb_dir):
    problems = by_id(lcb_dir)
    wrong = check_solution(problems["abc001_a"], "a, b = map(int, input().split())\nprint(a - b)")
    assert not wrong["passed"] and wrong["reason"] == "test 0: wrong answer"
    crash = check_solution(problems["abc001_a"], "raise ValueError('boom')")
    assert not crash["passed"] and crash["reason"].startswith("test 0: runtime error")
    slow = check_solution(problems["abc001_a"], "while True:\n    pass", timeout=1)
    assert not slow["passed"] and slow["reason"] == "test 0: time limit exceeded"
    # functional: wrong on the private test only
    two_sum = "class Solution:\n    def twoSum(self, nums, target):\n        return [0, 1]\n"
    result = check_solution(problems["1"], two_sum)
    assert not result["passed"] and result["reason"].startswith("test 1: wrong answer")


def test_full_and_easy_scores_from_local_files(lcb_dir):
    def answer(conversation, j):
        qid = next(p["question_id"] for p in ROWS if p["question_content"] in conversation[-1]["content"])
        return f"Here you go:\n```python\n{SOLUTIONS[qid] if qid != '1000A' else 'print(0)'}\n```"

    result = evaluate_benchmark("livecodebench", CannedGenerator(answer), {"livecodebench": {"path": str(lcb_dir)}})
    full, easy = result["scores"]["full"], result["scores"]["easy"]
    assert (full["n"], full["passed"], easy["n"], easy["passed"]) == (3, 2, 1, 1)
    assert full["pass@1"] == pytest.approx(200 / 3) and easy["pass@1"] == 100.0
    assert [r["difficulty"] for r in result["records"]] == ["medium", "hard", "easy"]
    assert result["records"][1]["reason"] == "test 0: wrong answer"


def test_livecodebench_without_data_is_absent(tmp_path):
    with pytest.raises(Unavailable, match="no local data at"):
        evaluate_benchmark("livecodebench", CannedGenerator(None),
                           {"livecodebench": {"path": str(tmp_path / "code_generation_lite")}})


def test_a_forged_report_line_does_not_pass(lcb_dir):
    """The harness's report line carries a per-run nonce: a functional solution printing
    one of its own (with whatever stdin held) and leaving does not pass."""
    problems = by_id(lcb_dir)
    forger = ("import os\nline = sys.stdin.read().strip()\n"
              "for tag in ('@@LCB@@', f'@@LCB {line}@@'):\n"
              "    sys.__stdout__.write('\\n' + tag + json.dumps({'passed': True, 'reason': 'passed'}) + '\\n')\n"
              "sys.__stdout__.flush()\nos._exit(0)\n")
    result = check_solution(problems["1"], forger)
    assert not result["passed"] and result["reason"].startswith("harness died")
