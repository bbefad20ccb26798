"""End to end: the real Snakemake DAG on a micro model, then partial reruns.

The micro model (random weights from a small config) is first fitted for a few
seconds to one well-formed synthesis answer, so every parser downstream sees
parseable text and every stage does real work on real files (the scorer runs in
log-prob mode, which always yields numbers).
"""
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from scoder.config import validate
from scoder.influence import FACTORS
from scoder.plan import Plan
from scoder.prompts import synthesis_messages

REPO = Path(__file__).resolve().parent.parent
WORKFLOW_FILES = ("Snakefile", "rules", "scripts", "config", "envs", "slurm", "report", "schemas")


def copy_workflow(dst: Path) -> Path:
    """A copy of the workflow (Snakefile, rules, scripts, config, ...) in the new folder ``dst``."""
    dst.mkdir()
    for name in WORKFLOW_FILES:
        src = REPO / name
        if src.exists():
            (shutil.copytree if src.is_dir() else shutil.copy)(src, dst / name)
    return dst


CANNED_PROBLEM = "Write a function add(a, b) that returns the sum of two numbers."
CANNED_SOLUTION = "```python\ndef add(a, b):\n    return a + b\n```"


def fitted_micro_model(path: Path) -> str:
    """A micro model that answers every prompt with one canned, parseable answer.

    Its attention sees only the last few tokens (Qwen2 sliding window), so what it
    writes after the assistant tag cannot depend on the prompt: fitted on one
    short prompt with plain Adam steps, it answers every prompt the same way."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from scoder.models import GGUF_FILE, smollm2_gguf_dir
    from scoder.prompts import format_synthesis_response

    tok = AutoTokenizer.from_pretrained(smollm2_gguf_dir(), gguf_file=GGUF_FILE)
    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=len(tok), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, use_sliding_window=True,
                         sliding_window=8, max_window_layers=0, layer_types=["sliding_attention"] * 2,
                         tie_word_embeddings=True, bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    model = Qwen2ForCausalLM(config)
    prompt = tok.apply_chat_template([{"role": "user", "content": "Write a function."}],
                                     add_generation_prompt=True, return_tensors="pt", return_dict=True)["input_ids"]
    answer = tok(format_synthesis_response(CANNED_PROBLEM, CANNED_SOLUTION) + tok.eos_token,
                 add_special_tokens=False, return_tensors="pt")["input_ids"]
    ids = torch.cat([prompt, answer], dim=1)
    labels = ids.clone()
    labels[:, : prompt.shape[1]] = -100
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(200):
        model(input_ids=ids, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def micro_runs(model: str) -> dict:
    models = {role: model for role in ("synthesizer", "teacher", "quality", "scorer", "reference", "target")}
    train = {"epochs": 1, "learning_rate": 1e-4, "global_batch_size": 2, "max_length": 512}
    return {"runs": {
        "micro": {
            "extends": "tiny",
            "models": {**models, "embedder": "embedded:minilm"},
            "pool": {"limit": 120, "seed": {"per_category": 1}, "quality": {"threshold": 0.0}},
            "teacher": {"protocol": "single", "sampling": {"max_new_tokens": 80}},
            "synthesizer": {"checkpoints": 2, "train": train},
            "sampling": {"n": 1, "temperature": 0.0, "max_new_tokens": 80, "protocol": "single"},
                        "reference": {"lora": {"r": 4, "alpha": 8}, "train": train},
            "influence": {"k": 64, "batch_size": 2, "max_length": 512},
            "bootstrap": {"iterations": [{"snippets": 3, "select": 2}, {"snippets": 3, "select": 2}]},
            "final": {"size": 3},
            "target": {"phase1": {"size": 4, "train": train}, "phase2": {"train": train}},
            "evaluation": {"humaneval": {"limit": 3, "max_new_tokens": 64}},
            # learned weights from K=2 experiments, each scored on 2 held-out problems
            "scorer": {"data": {"sources": [{"data": "dp", "count": 4}, {"data": "standin:docstring-pairs", "count": 4}]},
                       "weights": {"experiments": 2, "size": 3, "train": train,
                                   "benchmark": {"humaneval": {"offset": 100, "limit": 2, "max_new_tokens": 32}}}},
            "probes": {"stages": [0, 2], "size": 2, "train": train},
        },
        "micro_eval": {"extends": "micro", "evaluation": {"humaneval": {"limit": 2}}},
        "micro_no_influence": {"extends": "micro", "ablation_of": "micro", "label": "w/o influence",
                               "bootstrap": {"selection": "score"}},
        "micro_structured": {"extends": "micro", "influence": {
            "projection": "structured", "structured": {"factor": 4, "pca": 2, "fit_examples": 4}}},
    }}


def snakemake(workdir: Path, *args: str) -> str:
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", *args, "--configfile", "micro.yaml"]
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)
    if proc.returncode != 0:
        logs = "\n".join(f"== {p}\n{p.read_text()[-3000:]}" for p in workdir.glob("work/*/*/log*.txt"))
        pytest.fail(f"{' '.join(cmd)} failed:\n{proc.stderr[-6000:]}\n{logs[-12000:]}")
    return proc.stdout + proc.stderr


def planned_jobs(output: str) -> dict[str, int]:
    """{rule: count} from the job-stats table of a dry run."""
    table = output.split("Job stats:", 1)[-1]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)
            if m.group(1) not in ("total", "job", "count")}


@pytest.fixture(scope="module")
def workflow(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("workflow")
    model = fitted_micro_model(tmp / "model")
    workdir = copy_workflow(tmp / "repo")
    (workdir / "micro.yaml").write_text(yaml.safe_dump(micro_runs(model)))
    snakemake(workdir, "results/scoder_micro.json", "results/scoder_micro_iter0.json",
              "results/scoder_micro_iter2.json", "results/scoder_micro.md")
    return workdir


@pytest.mark.slow
def test_micro_run_writes_results_with_counts_for_every_stage(workflow):
    results = json.loads((workflow / "results/scoder_micro.json").read_text())
    assert results["run"] == "micro"
    humaneval = results["benchmarks"]["humaneval"]["base"]
    assert humaneval["n"] == 3 and 0 <= humaneval["pass@1"] <= 100
    pool = results["data"]["pool"]
    assert pool["extract"]["out"] == 120
    assert [pool[s]["in"] for s in ("dedup", "filter")] == [pool["extract"]["out"], pool["dedup"]["out"]]
    assert results["data"]["dp"]["requested"] == pool["seed"]["out"] > 0
    assert [it["iteration"] for it in results["data"]["iterations"]] == [1, 2]
    assert all(it["selected"] <= 2 for it in results["data"]["iterations"])
    assert results["cost"]["stages"]["synthesizer"]["jobs"] == 3
    assert results["provenance"]["packages"]["transformers"]
    weights = results["scorer"]["weights"]
    assert weights["K"] == 2 and len(weights["points"]) == 2 and set(weights["weights"]) == set(
        results["data"]["iterations"][0]["parse_failures"])


@pytest.mark.slow
def test_probes_and_tables(workflow):
    for i in (0, 2):
        probe = json.loads((workflow / f"results/scoder_micro_iter{i}.json").read_text())
        assert probe["probe"] == f"iter{i}" and probe["benchmarks"]["humaneval"]["base"]["n"] == 3
    table = (workflow / "results/scoder_micro.md").read_text()
    assert "## Table 3" in table and "| Model | HumanEval | HumanEval+ |" in table
    assert "## Table 2" in table and "| enhanced (trained on D_p) |" in table


@pytest.mark.slow
def test_results_validate_against_the_schema(workflow):
    import jsonschema

    schema = json.loads((REPO / "schemas/scoder_results.schema.json").read_text())
    jsonschema.validate(json.loads((workflow / "results/scoder_micro.json").read_text()), schema)


@pytest.mark.slow
def test_rerun_does_nothing(workflow):
    out = snakemake(workflow, "-n", "results/scoder_micro.json")
    assert "Nothing to be done" in out


@pytest.mark.slow
def test_evaluation_edit_reruns_only_evaluation(workflow):
    jobs = planned_jobs(snakemake(workflow, "-n", "results/scoder_micro_eval.json"))
    assert jobs == {"evaluate": 1, "report": 1}


@pytest.mark.slow
def test_ablation_reuses_everything_before_selection(workflow):
    jobs = planned_jobs(snakemake(workflow, "-n", "results/scoder_micro_no_influence.json"))
    # iteration 1 is reused up to its scores; selection and all that follows reruns
    assert jobs == {"select": 2, "synthesizer_m2": 2, "sample": 2, "score": 1, "best": 1,
                    "synthesize": 1, "target": 1, "evaluate": 1, "report": 1}


@pytest.mark.slow
def test_structured_projection_candidates_use_d_p_factors(workflow):
    """The structured projection through the real rules: D_p's job fits the Kronecker factors, the
    candidates' job projects with them, select reads both (iteration 1's candidates are micro's)."""
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    config["runs"].update(yaml.safe_load((workflow / "micro.yaml").read_text())["runs"])
    run = Plan(validate(config)).runs["micro_structured"]
    select = run.iterations[1].select
    assert planned_jobs(snakemake(workflow, "-n", select.path("selected"))) == {"gradients": 2, "select": 1}
    snakemake(workflow, select.path("selected"))
    assert (workflow / run.dp_features.path("features") / "ckpt1" / FACTORS).exists()
    candidates = workflow / run.iterations[1].shards[0].gradients.path("features") / "ckpt1"
    assert not (candidates / FACTORS).exists()  # D_p's, not its own
    selected = [json.loads(line) for line in (workflow / select.path("selected")).read_text().splitlines()]
    assert len(selected) == 2 and all(-1 <= r["influence"] <= 1 for r in selected)
