"""Stage keys: runs share what they agree on; an edit reaches only its descendants."""
import copy

import yaml

from scoder.config import validate
from scoder.plan import Plan, run_nodes

with open("config/config.yaml") as f:
    CONFIG = yaml.safe_load(f)


def nodes_of(config, run):
    plan = Plan(validate(config))
    return {(n.stage, n.key) for n in run_nodes(plan.runs[run])}


def with_run(extra_name, overrides):
    config = copy.deepcopy(CONFIG)
    config["runs"][extra_name] = {"extends": "tiny", **overrides}
    return config


def changed_stages(overrides):
    config = with_run("edited", overrides)
    before, after = nodes_of(config, "tiny"), nodes_of(config, "edited")
    return sorted({stage for stage, _ in after - before})


def test_paper_runs_share_pool_teacher_reference_and_phase1_target():
    plan = Plan(validate(CONFIG))
    q14, q7 = plan.runs["q14"], plan.runs["q7"]
    assert q14["pool"]["seed"] is q7["pool"]["seed"]
    assert q14["teacher"] is q7["teacher"]
    assert q14["reference"] is q7["reference"]
    assert q14["dp_features"] is q7["dp_features"]
    assert q14["iterations"][0]["synthesizer"] is not q7["iterations"][0]["synthesizer"]


def test_influence_projection_edit_reruns_only_influence_and_descendants():
    # the pool, D_p, the reference model and iteration 0 are untouched
    assert changed_stages({"influence": {"k": 1024}}) == sorted(
        ["gradients", "select", "synthesizer", "sample", "score", "best", "synthesize", "target", "evaluate"])


def test_ablation_without_influence_keeps_everything_before_selection():
    changed = changed_stages({"influence": {"enabled": False}})
    assert "gradients" not in changed
    assert set(changed) == {"select", "synthesizer", "sample", "score", "best", "synthesize", "target", "evaluate"}
    # the first iteration's samples and scores are shared with the main run
    config = with_run("noinf", {"influence": {"enabled": False}})
    plan = Plan(validate(config))
    assert plan.runs["noinf"]["iterations"][1]["score"] is plan.runs["tiny"]["iterations"][1]["score"]


def test_evaluation_edit_reruns_only_evaluation():
    assert changed_stages({"evaluation": {"humaneval": {"limit": 5}}}) == ["evaluate"]


def test_single_checkpoint_sampling_draws_m_times_n_from_the_last_checkpoint():
    plan = Plan(validate(with_run("single", {"sampling": {"multi_checkpoint": False}})))
    sample = plan.runs["single"]["iterations"][1]["sample"]
    m = plan.runs["single"]["settings"]["synthesizer"]["checkpoints"]
    assert sample.params["checkpoint_list"] == [m]
    assert sample.params["sampling"]["n"] == m * plan.runs["single"]["settings"]["sampling"]["n"]


def test_iterations_take_disjoint_slices_of_the_supply():
    plan = Plan(validate(CONFIG))
    steps = plan.runs["q14"]["iterations"][1:]
    spans = [(s["sample"].params["start"], s["sample"].params["count"]) for s in steps]
    assert spans == [(0, 40000), (40000, 80000)]
    assert plan.runs["q14"]["final"].params["start"] == 120000
