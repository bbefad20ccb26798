"""The synthesis prompt, its parser (on the shapes real answers take) and the quality prompt."""
import pytest

from scoder.prompts import (extract_code, format_synthesis_response, parse_synthesis,
                            quality_messages, split_docstring, synthesis_messages)

SNIPPET = 'def area(r):\n    """Area of a circle of radius r."""\n    return 3.14159 * r * r'
CODE = "```python\ndef circle_area(r):\n    return 3.14159 * r ** 2\n```"


def test_synthesis_prompt_holds_snippet_and_both_section_headers():
    (msg,) = synthesis_messages(SNIPPET)
    assert msg["role"] == "user"
    assert SNIPPET in msg["content"]
    assert "[Problem Description]" in msg["content"] and "[Solution]" in msg["content"]


def test_canonical_response_round_trips():
    problem = "Write `circle_area(r)` returning the area of a circle.\n\nExample: r=1 -> 3.14159"
    solution = "Use the formula.\n\n" + CODE
    parsed, reason = parse_synthesis(format_synthesis_response(problem, solution))
    assert reason is None
    assert parsed == {"problem": problem, "solution": solution}


@pytest.mark.parametrize("problem_header, solution_header", [
    ("## Problem Description", "## Solution"),
    ("**[Problem Description]**", "**[Solution]**"),
    ("### Problem Statement:", "### Solution:"),
    ("**Problem Description:**", "**Solution:**"),
    ("[problem description]", "[solution]"),
    ("Problem:", "Solution:"),
])
def test_parser_accepts_markdown_header_variants_and_ignores_preamble(problem_header,
                                                                      solution_header):
    text = (f"Sure! Here is a problem inspired by the snippet.\n\n{problem_header}\n"
            f"Compute the area of a circle.\nThe solution is simple.\n\n"
            f"{solution_header}\nHere is the code:\n{CODE}\n")
    parsed, reason = parse_synthesis(text)
    assert reason is None, reason
    # The prose line "The solution is simple." is not mistaken for a header.
    assert parsed["problem"] == "Compute the area of a circle.\nThe solution is simple."
    assert parsed["solution"].startswith("Here is the code:")
    assert extract_code(parsed["solution"]) == "def circle_area(r):\n    return 3.14159 * r ** 2"


def test_inline_header_content_is_kept():
    parsed, _ = parse_synthesis(f"[Problem Description]: Compute an area.\n[Solution]:\n{CODE}")
    assert parsed["problem"] == "Compute an area."


@pytest.mark.parametrize("text, reason", [
    (CODE, "missing_problem"),
    ("Here is some code:\n" + CODE, "missing_problem"),
    ("[Problem Description]\nCompute the area of a circle.", "missing_solution"),
    ("[Problem Description]\nCompute it.\n[Solution]\n", "missing_solution"),
    ("[Problem Description]\n\n[Solution]\n" + CODE, "empty_problem"),
    ("[Problem Description]\nCompute it.\n[Solution]\n```python\ndef f(r):\n    return",
     "truncated"),
    ("[Problem Description]\nCompute it, e.g.\n```python\narea(", "truncated"),
    ("[Problem Description]\nCompute it.\n[Solution]\n```python\n\n```", "empty_code"),
    ("[Problem Description]\nCompute it.\n[Solution]\nJust multiply pi by r squared.",
     "empty_code"),
])
def test_parser_names_the_failure(text, reason):
    assert parse_synthesis(text) == (None, reason)


def test_bare_code_solution_is_kept_fenced():
    parsed, reason = parse_synthesis("[Problem Description]\nCompute it.\n[Solution]\n"
                                     "def f(r):\n    return 3.14 * r * r\n")
    assert reason is None
    assert parsed["solution"] == "```python\ndef f(r):\n    return 3.14 * r * r\n```"


def test_repeated_problem_section_after_solution_is_cut():
    text = format_synthesis_response("Compute it.", CODE) + "\n\n[Problem Description]\nAgain..."
    parsed, _ = parse_synthesis(text)
    assert parsed["solution"] == CODE


def test_split_docstring_separates_description_from_code():
    doc, code = split_docstring(SNIPPET)
    assert doc == "Area of a circle of radius r."
    assert '"""' not in code and "return 3.14159 * r * r" in code
    assert split_docstring("def f(:\n") == ("", "def f(:\n")


def test_quality_prompt_is_few_shot_yes_no_ending_with_the_function():
    messages = quality_messages(SNIPPET)
    roles = [m["role"] for m in messages]
    assert roles[-1] == "user" and roles[:-1] == ["user", "assistant"] * (len(roles) // 2)
    answers = [m["content"].split(".")[0] for m in messages if m["role"] == "assistant"]
    assert sorted(set(answers)) == ["No", "Yes"]
    last = messages[-1]["content"]
    assert "Area of a circle of radius r." in last and "return 3.14159 * r * r" in last
