"""Stage I, correct-and-fault knowledge delivery (SODA §3.2).

The teacher answers every question twice: with the correct-solution prompt
P_c (Fig. 3A) and with the faulty-solution prompt P_f (Fig. 3B), which names
the five error types.  Answers are parsed robustly (a fenced code block in any
language, or bare Python); what fails is counted by reason.  Questions are then
split 80/20 (seeded): the 80% become SFT examples (eq. 1, prompt P_c(x) ->
y_c), the 20% DPO pairs (eq. 2) in TRL's preference format.

Not in the paper: the DPO pair compares the two *code blocks* (both fenced the
same way) rather than the whole answers, because an answer to P_f announces its
own errors in prose ("Logical Error: ..."), which would let the contrast be
learnt from the commentary instead of the code.
"""
from __future__ import annotations

import re
from collections import Counter

import numpy as np

from scoder.prompts import looks_like_code
from scoder.soda.generate import ask, total_usage

SYSTEM = "You are an AI code interpreter."
CORRECT_PROMPT = ("Below is an instruction that describes a programming task. Your goal is to generate a correct "
                  "solution to the #Given Instruction.\n\n#Given Instruction\n{question}")
FAULTY_PROMPT = ("Below is an instruction that describes a programming task. Your goal is to generate a faulty "
                 "solution to the #Given Instruction#. Your faulty solution MUST contain at least one of the "
                 "following types of errors:\n{errors}\n\n#Given Instruction#:\n{question}")
# The fault taxonomy of §3.2, in the paper's words.
ERROR_TYPES = {
    "syntax": "Syntax Error: Violations of programming language grammar, such as unmatched parentheses or "
              "misspelled keywords.",
    "logical": "Logical Error: Misunderstandings of the problem that lead to incorrect outcomes even though the "
               "code runs.",
    "type": "Type Error: Inappropriate operations on objects of incorrect types, such as concatenating strings "
            "directly with integers.",
    "name": "Name Error: Use of variables or functions that have not been defined.",
    "timeout": "Timeout Error: Creation of infinite loops due to conditions that can never be fulfilled, "
               "potentially making the code stuck.",
}
# How an answer names an error type it injected ("Logical Error:", "NameError", "infinite loop").
_ERROR_MENTION = {
    "syntax": re.compile(r"syntax\s*error", re.I),
    "logical": re.compile(r"logic(?:al)?\s*error", re.I),
    "type": re.compile(r"type\s*error", re.I),
    "name": re.compile(r"name\s*error", re.I),
    "timeout": re.compile(r"timeout|time\s*out|infinite\s+loop", re.I),
}
LANGUAGES = {"python": "python", "py": "python", "python3": "python", "java": "java", "javascript": "javascript",
             "js": "javascript", "node": "javascript", "c": "c", "cpp": "cpp", "c++": "cpp", "cc": "cpp",
             "cxx": "cpp", "go": "go", "golang": "go"}
# A language a question asks for by name ("Write a Java method ...").
_ASKED = [("cpp", re.compile(r"\bC\+\+|\bcpp\b", re.I)), ("javascript", re.compile(r"\bjavascript\b|\bnode\.?js\b", re.I)),
          ("java", re.compile(r"\bjava\b", re.I)), ("go", re.compile(r"\bgolang\b|\bin go\b|\bgo (?:program|function)", re.I)),
          ("c", re.compile(r"\bin C\b|\bC (?:program|function)\b")), ("python", re.compile(r"\bpython\b", re.I))]
_BLOCK = re.compile(r"^[ \t]*```[ \t]*(?P<lang>[\w+#.-]*)[^\n]*\n(?P<code>.*?)^[ \t]*```", re.M | re.S)
_FENCE = re.compile(r"^[ \t]*```", re.M)


def correct_messages(question: str) -> list[dict]:
    """P_c(x): the correct-solution prompt (also the student's prompt, §3.3)."""
    return [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": CORRECT_PROMPT.format(question=question.strip())}]


def faulty_messages(question: str, errors: list[str] = tuple(ERROR_TYPES)) -> list[dict]:
    """P_f(x): the faulty-solution prompt naming the error types."""
    listed = "\n".join(f"- {ERROR_TYPES[e]}" for e in errors)
    return [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": FAULTY_PROMPT.format(errors=listed, question=question.strip())}]


def asked_language(question: str, default: str = "python") -> str:
    """The programming language a question names, else ``default``."""
    for language, pattern in _ASKED:
        if pattern.search(question):
            return language
    return default


def parse_solution(text: str, default_language: str = "python") -> tuple[dict | None, str | None]:
    """({"language", "code"}, None) from an answer, or (None, reason) with reason in
    empty, truncated, no_code.  The first fenced block in a known (or no) language
    wins; a block without a tag takes ``default_language``; bare Python is accepted."""
    if not text or not text.strip():
        return None, "empty"
    blocks = [m for m in _BLOCK.finditer(text) if m["code"].strip()]
    known = [m for m in blocks if not m["lang"] or m["lang"].lower() in LANGUAGES]
    if known:
        m = known[0]
        language = LANGUAGES.get(m["lang"].lower(), default_language) if m["lang"] else default_language
        return {"language": language, "code": m["code"].strip("\n")}, None
    if blocks:  # only blocks in languages we cannot run (sql, bash): keep the first
        m = blocks[0]
        return {"language": m["lang"].lower(), "code": m["code"].strip("\n")}, None
    fences = list(_FENCE.finditer(text))
    if len(fences) == 1:
        head = text[:fences[0].start()].strip("\n")
        if looks_like_code(head):  # bare code closed by a stray fence, then prose
            return {"language": "python", "code": head}, None
    if len(fences) % 2 == 1:
        return None, "truncated"  # an opened code block the answer never closed
    if looks_like_code(text.strip()):
        return {"language": "python", "code": text.strip("\n")}, None
    return None, "no_code"


def mentioned_errors(text: str) -> list[str]:
    """The error types of the taxonomy a faulty answer names."""
    return [e for e, pattern in _ERROR_MENTION.items() if pattern.search(text)]


def fenced(language: str, code: str) -> str:
    return f"```{language}\n{code.strip()}\n```"


def teach(questions: list[dict], generator, progress_dir: str, *, sampling: dict, model_name: str,
          errors: list[str] = tuple(ERROR_TYPES), batch_size: int = 8) -> tuple[list[dict], list[dict], dict]:
    """The teacher's correct and faulty solution per question: (knowledge, failures, stats).
    A question whose correct answer does not parse is dropped; one whose faulty answer
    does not parse keeps ``faulty: None`` (it can still serve SFT)."""
    args = {"model": model_name, "system": SYSTEM}
    correct = ask(questions, lambda q: correct_messages(q["question"]), generator, f"{progress_dir}/correct",
                  args={**args, "prompt": CORRECT_PROMPT}, sampling=sampling, batch_size=batch_size)
    faulty = ask(questions, lambda q: faulty_messages(q["question"], errors), generator, f"{progress_dir}/faulty",
                 args={**args, "prompt": FAULTY_PROMPT, "errors": list(errors)}, sampling=sampling,
                 batch_size=batch_size)
    knowledge, failures = [], []
    reasons = {"correct": Counter(), "faulty": Counter()}
    mentions = Counter()
    for q in questions:
        language = q.get("language") or asked_language(q["question"])
        c_raw, f_raw = correct[q["id"]][0], faulty[q["id"]][0]
        c, c_reason = parse_solution(c_raw, language)
        f, f_reason = parse_solution(f_raw, language)
        for which, parsed, reason, raw in (("correct", c, c_reason, c_raw), ("faulty", f, f_reason, f_raw)):
            if parsed is None:
                reasons[which][reason] += 1
                failures.append({**q, "which": which, "reason": reason, "raw": raw})
        if f is not None:
            mentions.update(mentioned_errors(f_raw))
        if c is None:
            continue
        knowledge.append({**q, "language": c["language"], "correct": c_raw.strip(), "correct_code": c["code"],
                          "faulty": None if f is None else f_raw.strip(),
                          "faulty_code": None if f is None else f["code"],
                          "faulty_language": None if f is None else f["language"],
                          "error_types": [] if f is None else mentioned_errors(f_raw)})
    n = len(questions)
    parsed = {w: n - sum(reasons[w].values()) for w in reasons}
    stats = {"questions": n, "correct_parsed": parsed["correct"], "faulty_parsed": parsed["faulty"],
             "correct_parse_rate": round(parsed["correct"] / n, 4) if n else None,
             "faulty_parse_rate": round(parsed["faulty"] / n, 4) if n else None,
             "failed": {k: dict(v) for k, v in reasons.items()}, "kept": len(knowledge),
             "pairs": sum(k["faulty"] is not None for k in knowledge), "error_types_named": dict(mentions),
             "languages": dict(Counter(k["language"] for k in knowledge)),
             "usage": total_usage(correct, faulty), "this_attempt": {"usage": generator.usage}}
    return knowledge, failures, stats


def split(knowledge: list[dict], *, sft_fraction: float = 0.8, seed: int = 0) -> tuple[list[dict], list[dict], dict]:
    """Seeded 80/20 partition of the questions: (SFT part, contrastive part, stats).
    Contrastive questions without a parsed faulty solution are dropped and counted."""
    ordered = sorted(knowledge, key=lambda k: str(k["id"]))
    order = np.random.default_rng(seed).permutation(len(ordered))
    cut = int(round(sft_fraction * len(ordered)))
    sft = [ordered[i] for i in sorted(order[:cut])]
    contrastive = [ordered[i] for i in sorted(order[cut:])]
    pairs = [k for k in contrastive if k.get("faulty_code")]
    return sft, pairs, {"in": len(knowledge), "sft": len(sft), "fcl": len(pairs),
                        "fcl_without_faulty": len(contrastive) - len(pairs), "sft_fraction": sft_fraction}


def sft_example(record: dict) -> dict:
    """Correctness-aware SFT example (eq. 1): P_c(x) -> the teacher's correct answer y_c."""
    return {"id": record["id"], "messages": correct_messages(record["question"]) + [
        {"role": "assistant", "content": record["correct"]}]}


def dpo_pair(record: dict) -> dict:
    """Fault-aware contrastive example (eq. 2) in TRL's preference format: the prompt
    turns P_c(x), the correct code as ``chosen``, the faulty code as ``rejected``."""
    if not record.get("faulty_code"):
        raise ValueError(f"question {record['id']} has no faulty solution to contrast")
    return {"id": record["id"], "prompt": correct_messages(record["question"]),
            "chosen": fenced(record["language"], record["correct_code"]),
            "rejected": fenced(record.get("faulty_language") or record["language"], record["faulty_code"])}
