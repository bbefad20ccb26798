"""Stage keys: runs share what they agree on; an edit reaches only its descendants."""
import copy

import yaml

from scoder.config import validate
from scoder.plan import Plan

with open("config/config.yaml") as f:
    CONFIG = yaml.safe_load(f)


def nodes_of(config, run):
    plan = Plan(validate(config))
    return {(n.stage, n.key) for n in plan.runs[run].nodes}


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
    assert q14.pool.seed is q7.pool.seed
    assert q14.teacher is q7.teacher
    assert q14.reference is q7.reference
    assert q14.dp_features is q7.dp_features
    assert q14.iterations[0].synthesizer is not q7.iterations[0].synthesizer


def test_influence_projection_edit_reruns_only_influence_and_descendants():
    # the pool, D_p, the reference model and iteration 0 are untouched
    assert changed_stages({"influence": {"k": 1024}}) == sorted(
        ["gradients", "select", "synthesizer", "sample", "score", "best", "synthesize", "target", "evaluate"])


def test_structured_projection_candidates_read_d_p_factors():
    plan = Plan(validate(with_run("kron", {"influence": {"projection": "structured"}})))
    run = plan.runs["kron"]
    shard = run.iterations[1].shards[0]
    assert shard.gradients.inputs["factors"] == run.dp_features.path("features")
    assert "factors" not in run.dp_features.inputs
    assert run.dp_features.params["structured"] == {"factor": 64, "pca": 32, "fit_examples": 1024}
    # a dense run's keys do not depend on the structured settings
    assert "structured" not in plan.runs["tiny"].dp_features.params
    assert changed_stages({"influence": {"structured": {"pca": 0}}}) == []


def test_ablation_without_influence_keeps_everything_before_selection():
    changed = changed_stages({"bootstrap": {"selection": "score"}})
    assert "gradients" not in changed
    assert set(changed) == {"select", "synthesizer", "sample", "score", "best", "synthesize", "target", "evaluate"}
    # the first iteration's samples and scores are shared with the main run
    config = with_run("noinf", {"bootstrap": {"selection": "score"}})
    plan = Plan(validate(config))
    assert plan.runs["noinf"].iterations[1].shards[0].score is plan.runs["tiny"].iterations[1].shards[0].score


def test_evaluation_edit_reruns_only_evaluation():
    assert changed_stages({"evaluation": {"humaneval": {"limit": 5}}}) == ["evaluate"]


def test_single_checkpoint_sampling_draws_m_times_n_from_the_last_checkpoint():
    plan = Plan(validate(with_run("single", {"sampling": {"multi_checkpoint": False}})))
    sample = plan.runs["single"].iterations[1].shards[0].sample
    m = plan.runs["single"].settings["synthesizer"]["checkpoints"]
    assert sample.params["checkpoint_list"] == [m]
    assert sample.params["sampling"]["n"] == m * plan.runs["single"].settings["sampling"]["n"]


def test_iterations_take_disjoint_slices_of_the_supply():
    plan = Plan(validate(CONFIG))
    steps = plan.runs["q14"].iterations[1:]
    spans = [[(p.sample.params["start"], p.sample.params["count"]) for p in s.shards] for s in steps]
    # four shards per iteration (bootstrap.shards), contiguous and disjoint
    assert spans == [[(0, 10000), (10000, 10000), (20000, 10000), (30000, 10000)],
                     [(40000, 20000), (60000, 20000), (80000, 20000), (100000, 20000)]]
    assert plan.runs["q14"].final.params["start"] == 120000


def test_paper_runs_and_their_ablations_share_the_scorer_and_its_weights():
    plan = Plan(validate(CONFIG))
    q14 = plan.runs["q14"]
    for name in ("q7", "l", "q14_wo_influence", "q14_select_random"):
        assert plan.runs[name].scorer.model is q14.scorer.model
        assert plan.runs[name].scorer.weights is q14.scorer.weights
    # Appendix C: 2.5K from each of three synthesizers and evol-codealpaca, one trained scorer
    assert [s["count"] for s in q14.settings["scorer"]["data"]["sources"]] == [2500] * 4
    assert q14.scorer.annotation.params["generator"]["model"] == "gpt-4o-2024-08-06"


def test_learned_weights_come_from_k_experiments_each_a_finetuned_and_evaluated_target():
    plan = Plan(validate(CONFIG))
    q14 = plan.runs["q14"]
    weights = q14.scorer.weights
    assert len(weights.inputs["mixes"]) == len(weights.inputs["scores"]) == 20
    stages = {n.stage for n in q14.nodes}
    assert {"scorer_data", "scorer", "mix", "weights"} <= stages
    # every iteration's best-candidate step reads the learned weights and the trained scorer scores
    for step in q14.iterations[1:]:
        for part in step.shards:
            assert part.best.inputs["weights"] == weights.path("weights")
            assert part.score.inputs["scorer"] == q14.scorer.model.path("model")


def test_scorer_ablation_picks_a_random_candidate_and_skips_scoring():
    plan = Plan(validate(CONFIG))
    run = plan.runs["q14_wo_scoring"]
    for step in run.iterations[1:]:
        for part in step.shards:
            assert part.score is None and part.best.params["selector"] == "random"
    assert run.scorer.model is None


def test_perplexity_selectors_score_candidates_under_the_reference_model():
    plan = Plan(validate(CONFIG))
    low, high = plan.runs["q14_select_low_ppl"], plan.runs["q14_select_high_ppl"]
    step = low.iterations[1]
    assert step.select.params["by"] == "low_perplexity"
    assert step.select.inputs["perplexity"] == high.iterations[1].select.inputs["perplexity"]
    assert len(step.select.inputs["perplexity"]) == 4  # one per shard
    assert "features" not in step.select.inputs


def test_probes_train_the_target_base_on_each_stages_synthesized_data():
    plan = Plan(validate(CONFIG))
    q14 = plan.runs["q14"]
    assert list(q14.probes) == ["original", "iter0", "iter1", "iter2"]
    assert q14.probes["original"].synthesize.params["generator"]["model"] == "Qwen/Qwen2.5-Coder-14B-Instruct"
    last = q14.iterations[2].synthesizer.path("checkpoint", m=5)
    assert q14.probes["iter2"].synthesize.inputs["model"] == last
    assert q14.probes["iter2"].target.params["model"] == "deepseek-ai/deepseek-coder-6.7b-base"


def test_each_sampling_job_reads_only_its_own_checkpoint():
    plan = Plan(validate(CONFIG))
    part = plan.runs["q14"].iterations[1].shards[0]
    synthesizer = plan.runs["q14"].iterations[0].synthesizer
    assert part.sample.inputs["checkpoint"] == synthesizer.path("checkpoint", m="{m}")
    assert part.sample_files == [part.sample.path("samples", m=m) for m in range(1, 6)]


def test_every_iteration_fine_tunes_the_enhanced_synthesizer_and_initial_is_a_variant():
    plan = Plan(validate(CONFIG))
    q14, initial = plan.runs["q14"], plan.runs["q14_init_initial"]
    enhanced = q14.iterations[0].synthesizer.path("checkpoint", m=5)
    assert [step.synthesizer.inputs["init"] for step in q14.iterations[1:]] == [enhanced, enhanced]
    # the variant starts each iteration from the original model and shares iteration 0 and
    # iteration 1's samples with q14
    assert [step.synthesizer.params["model"] for step in initial.iterations] == [
        "Qwen/Qwen2.5-Coder-14B-Instruct"] * 3
    assert initial.iterations[0].synthesizer is q14.iterations[0].synthesizer
    assert initial.iterations[1].shards[0].sample is q14.iterations[1].shards[0].sample
    previous = Plan(validate(with_run("prev", {"bootstrap": {"init": "previous"}}))).runs["prev"]
    assert previous.iterations[2].synthesizer.inputs["init"] == previous.iterations[1].synthesizer.path(
        "checkpoint", m=2)


def test_weight_experiments_read_the_iteration_scorers_scores_of_the_scorer_data():
    plan = Plan(validate(CONFIG))
    for name in ("q14", "tiny"):
        run = plan.runs[name]
        experiments = run.scorer.experiments
        iteration_score = run.iterations[1].shards[0].score
        # scored as the iterations score: same generator spec and mode, other samples
        assert experiments.params == iteration_score.params
        assert {k: v for k, v in experiments.inputs.items() if k != "samples"} == {
            k: v for k, v in iteration_score.inputs.items() if k != "samples"}
        assert all(mix.inputs["scored"] == experiments.path("scored")
                   for mix in plan.nodes["mix"].values() if name in mix.runs)
    # the teacher scores the scorer's data only to train it (q14), not in tiny (prompted scorer)
    assert plan.runs["q14"].scorer.annotation is not None and plan.runs["tiny"].scorer.annotation is None


def test_figure4_variant_must_probe_its_final_synthesizer():
    import pytest

    from scoder.config import ConfigError

    config = copy.deepcopy(CONFIG)
    config["runs"]["q14_select_random"]["probes"] = {"stages": [0, 1]}
    with pytest.raises(ConfigError, match=r"runs.q14_select_random.table: .* add 2 to .*probes.stages"):
        validate(config)
