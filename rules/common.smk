# Config validation, the plan of stage instances, and the helpers rules use to
# find a node's inputs, params and resources from its {key} wildcard.
from scoder import dag as D
from scoder import plan as P
from scoder import preflight as PF
from scoder import report as R
from scoder.config import ConfigError, validate

try:
    RUNS = validate(config)
except ConfigError as error:
    raise WorkflowError(str(error)) from None

PLAN = P.Plan(RUNS)
# Every method's plan; rules/soda.smk adds SODA's.  A stage belongs to the plan that names its files.
PLANS = [PLAN]


# A real run (not -n) checks every input its jobs need and cannot do without before the first
# job starts, and stops with one message naming each (scoder.preflight); --no-hooks skips it.
onstart:
    if not workflow.touch:
        problems = PF.check_jobs(PLANS, [job.output[0] for job in workflow.dag.needrun_jobs() if job.output])
        if problems:
            raise WorkflowError(PF.message(problems))


wildcard_constraints:
    key="[0-9a-f]{10}",
    m="[0-9]+",
    run="[A-Za-z0-9_]+",


# a run name never ends like a probe (results/scoder_<run>_iter<i>.json)
RESULT_RUN = "(?![A-Za-z0-9_]*_(iter[0-9]+|original)(?![A-Za-z0-9_]))[A-Za-z0-9_]+"


def result_file(run):
    return PLAN.result_file(run)


def run_outputs(run):
    """Everything `snakemake` builds for a run: its results, probes and tables."""
    probes = PLAN.runs[run].probes
    return [result_file(run), *(f"results/scoder_{run}_{p}.json" for p in probes), f"results/scoder_{run}.md",
            *plot_files(run)]


def plan_of(stage):
    """The plan a stage belongs to."""
    return next(plan for plan in PLANS if stage in plan.files)


def find_node(stage, key):
    return plan_of(stage).node(stage, key)


def node_inputs(stage):
    """Input function: the files a stage instance reads."""

    def inputs(wildcards):
        return find_node(stage, wildcards.key).job_inputs(**wildcards)

    return inputs


def node_params(stage):
    """Params function: the settings a stage instance runs with (pure config, models resolved by the plan)."""

    def params(wildcards):
        return find_node(stage, wildcards.key).settings(**wildcards)

    return params


def node_family(stage, key):
    """The `resources:` family (train, generate, gradients, cpu) a stage instance runs with."""
    plan = plan_of(stage)
    node = plan.node(stage, key)
    return plan.run_settings(node.runs[0])["resources"][node.resources]


def node_resource(stage, what, default):
    """Resources of a stage instance, from its run's `resources:` family."""

    def resource(wildcards):
        return node_family(stage, wildcards.key).get(what, default)

    return resource


def stage_log(stage, suffix=""):
    return f"{D.stage_dir_pattern(stage)}/log{suffix}.txt"


def stage_benchmark(stage, suffix=""):
    return f"{D.stage_dir_pattern(stage)}/benchmark{suffix}.tsv"


def node_threads(stage):
    """Threads of a job (its `cpus`), capped by --cores; torch uses exactly these."""
    return node_resource(stage, "cpus", 1)


# Settings a `resources:` family may add, named as snakemake-executor-plugin-slurm
# reads them (gpu_model -> --gpus=<model>:<gpu>, gres -> --gres, slurm_partition
# -> -p, slurm_account -> -A).
OPTIONAL_RESOURCES = ("gpu_model", "gres", "slurm_partition", "slurm_account")


def family_value(family_of, what, default=None):
    """Resource function: setting `what` of a job's family (``family_of(wildcards)``).

    `gres` replaces `gpu` and `gpu_model`; a GPU model means nothing for a CPU job."""

    def resource(wildcards):
        family = family_of(wildcards)
        if what in ("gpu", "gpu_model") and family.get("gres"):
            return 0 if what == "gpu" else None
        if what == "gpu_model" and not family.get("gpu"):
            return None
        return family.get(what, default)

    return resource


def family_flag(family_of, what):
    """Resource function: a yes/no setting of a job's family as 1 or 0 (resources are numbers or strings)."""

    def resource(wildcards):
        return int(bool(family_of(wildcards).get(what)))

    return resource


def cluster_resources(family_of, families):
    """Per-job cluster resources of a stage, from the `resources:` family of its run.

    ``family_of(wildcards)`` gives a job's family; ``families`` ({config path: family})
    every family the rule's jobs can have.  GPUs, CPUs, memory and run time always, and
    the family's device settings (dtype, attn_implementation, gradient_checkpointing);
    gpu_model, gres, partition and account only when some family sets them, so that
    otherwise the profile's default-resources still apply.  A --set-resources
    <rule>:<name>=<value> on the command line overrides both."""
    for path, family in families.items():
        if family.get("gres") and family.get("gpu_model"):
            raise WorkflowError(f"config: {path}: set gres or gpu_model, not both "
                                f"(gres '{family['gres']}' already names the GPUs)")
    resources = dict(
        gpu=family_value(family_of, "gpu", 0),
        cpus_per_task=family_value(family_of, "cpus", 1),
        mem_mb=family_value(family_of, "mem_mb", 4000),
        runtime=family_value(family_of, "runtime", 60),
        # how the job runs its models (scoder.device): read by the job, not by SLURM
        dtype=family_value(family_of, "dtype", "auto"),
        attn_implementation=family_value(family_of, "attn_implementation", "auto"),
        gradient_checkpointing=family_flag(family_of, "gradient_checkpointing"),
    )
    for what in OPTIONAL_RESOURCES:
        if any(family.get(what) for family in families.values()):
            resources[what] = family_value(family_of, what)
    return resources


def stage_resources(stage):
    """Per-job cluster resources of a stage, drawn from its run's `resources:` family."""

    def family_of(wildcards):
        return node_family(stage, wildcards.key)

    plan = plan_of(stage)

    def family_path(wildcards):  # where the family is in the config, for the job's messages
        node = plan.node(stage, wildcards.key)
        return f"{plan.section}.{node.runs[0]}.resources.{node.resources}"

    families = {f"{plan.section}.{node.runs[0]}.resources.{node.resources}": node_family(stage, key)
                for key, node in plan.nodes.get(stage, {}).items()}
    return {**cluster_resources(family_of, families), "family": family_path}


def run_of(plan, wildcards, target=None):
    """The run a results file (``target``; by default its results) names (``{run}``), laid out by ``plan``."""
    if wildcards.run not in plan.runs:
        target = target or plan.result_file(wildcards.run)
        raise WorkflowError(f"{target}: no run '{wildcards.run}' under {plan.section}: "
                            f"(runs: {', '.join(sorted(plan.runs))})")
    return plan.runs[wildcards.run]


def run_plan(wildcards):
    return run_of(PLAN, wildcards)


def report_inputs(plan):
    """Input function: every file the results of a run are gathered from (stats, logs, benchmarks)."""

    def inputs(wildcards):
        return run_of(plan, wildcards).report_files()

    return inputs


def report_params(plan, method):
    """Params function of a results file: the run's settings and stage instances."""

    def params(wildcards):
        run = run_of(plan, wildcards)
        return {"method": method, "run": wildcards.run, "settings": run.settings, "stages": run.stages()}

    return params


def pool_inputs(wildcards):
    """The seed stage's split and every pool stage's stats (results/pool_<run>.jsonl)."""
    return run_of(PLAN, wildcards, f"results/pool_{wildcards.run}.jsonl").pool.files()


def pool_params(wildcards):
    run = run_plan(wildcards)
    # each source with what its files were (its line of extract's key)
    sources = [{**src, "files": line} for src, line in zip(run.settings["pool"]["sources"],
                                                            run.pool.extract.params["files"])]
    return {"run": wildcards.run, "sources": sources,
            "dirs": {stage: node.dir for stage, node in run.pool.stages().items()}}


def probe_inputs(wildcards):
    run = run_plan(wildcards)
    if wildcards.probe not in run.probes:
        raise WorkflowError(f"results/scoder_{wildcards.run}_{wildcards.probe}.json: run '{wildcards.run}' "
                            f"probes {', '.join(run.probes) or 'nothing'} (probes.stages in config)")
    return run.probes[wildcards.probe].files()


def probe_params(wildcards):
    run = run_plan(wildcards)
    probe = run.probes.get(wildcards.probe)  # an unknown probe is named by probe_inputs
    return {"run": wildcards.run, "probe": wildcards.probe, "settings": run.settings,
            "stages": D.stage_table([probe.synthesize, probe.target, probe.evaluate] if probe else [])}


def ablations_of(run_name):
    """Runs configured as ablations of ``run_name`` (`ablation_of:`), in config order."""
    return [name for name, settings in RUNS.items() if settings.get("ablation_of") == run_name]


def table_inputs(wildcards):
    """The results the run's markdown tables are laid out from: its own and its probes'.
    Variant runs are shown when their results exist (they are not built for this)."""
    run = run_plan(wildcards)
    return {"results": result_file(wildcards.run),
            "probes": [f"results/scoder_{wildcards.run}_{p}.json" for p in run.probes]}


def table_params(wildcards):
    """Each variant run's table and the file that measures it (its results, or its final probe)."""
    variants = ablations_of(wildcards.run)
    return {"run": wildcards.run,
            "variants": {name: {"table": RUNS[name].get("table", "table4"),
                                "file": R.variant_file(name, RUNS[name])} for name in variants},
            "labels": {name: RUNS[name].get("label", name) for name in variants},
            "main": R.main_labels(wildcards.run, RUNS[wildcards.run])}


def ablation_table_params(plan):
    """Params function of a SODA run's tables: its ablation runs (`ablation_of`) and their results
    files, shown when they exist (they are not built for this)."""

    def params(wildcards):
        runs = plan.runs
        ablations = [name for name, run in runs.items() if run.settings.get("ablation_of") == wildcards.run]
        return {"ablations": {name: plan.result_file(name) for name in ablations},
                "labels": {name: runs[name].settings.get("label", name)
                           for name in [wildcards.run, *ablations] if name in runs}}

    return params


# --- figures for `snakemake --report` (rules/plots.smk)
PLOTS = {
    "funnel": ("pool_funnel.png", "1. Snippet pool"),
    "categories": ("categories.png", "1. Snippet pool"),
    "aspects": ("aspect_scores.png", "2. Bootstrap iterations"),
    "influence": ("influence.png", "2. Bootstrap iterations"),
    "benchmarks": ("benchmarks.png", "3. Results"),
    "costs": ("costs.png", "3. Results"),
    "table": ("results_table.html", "3. Results"),
}


def plot_files(run):
    """The figures of a run (a target for `rule all`)."""
    return [f"results/plots/{run}/{name}" for name, _ in PLOTS.values()]


def plot_output(what):
    name, category = PLOTS[what]
    return report(f"results/plots/{{run}}/{name}", caption=f"../report/{what}.rst", category=category,
                  subcategory="{run}", labels={"run": "{run}", "figure": what})


def plots_inputs(wildcards):
    """The run's stats files, its results and probes, and each iteration's scored samples."""
    run = run_plan(wildcards)
    files = {**run.report_files(), "results": result_file(wildcards.run)}
    for name in run.probes:
        files[f"probe_{name}"] = f"results/scoder_{wildcards.run}_{name}.json"
    return {**files, **run.scored_files()}


def plots_params(wildcards):
    settings = run_plan(wildcards).settings
    return {"aspects": list(settings["scorer"]["aspects"]),
            "categories": settings["pool"]["categorize"].get("categories")}

