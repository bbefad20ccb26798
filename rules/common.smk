# Config validation, the plan of stage instances, and the helpers rules use to
# find a node's inputs, params and resources from its {key} wildcard.
from scoder import plan as P
from scoder.config import ConfigError, validate

try:
    RUNS = validate(config)
except ConfigError as error:
    raise WorkflowError(str(error)) from None

PLAN = P.Plan(RUNS)


wildcard_constraints:
    key="[0-9a-f]{10}",
    m="[0-9]+",
    run="[A-Za-z0-9_]+",


def result_file(run):
    return f"results/scoder_{run}.json"


def node_inputs(stage):
    """Input function: the files a stage instance reads."""

    def inputs(wildcards):
        return PLAN.node(stage, wildcards.key).inputs

    return inputs


def node_params(stage):
    """Params function: the settings a stage instance runs with (pure config)."""

    def params(wildcards):
        return PLAN.node(stage, wildcards.key).params

    return params


def node_resource(stage, what, default):
    """Resources of a stage instance, from its run's `resources:` family."""

    def resource(wildcards):
        node = PLAN.node(stage, wildcards.key)
        family = RUNS[node.runs[0]]["resources"][node.resources]
        return family.get(what, default)

    return resource


def stage_log(stage, suffix=""):
    return f"{P.stage_dir_pattern(stage)}/log{suffix}.txt"


def stage_benchmark(stage, suffix=""):
    return f"{P.stage_dir_pattern(stage)}/benchmark{suffix}.tsv"


def node_threads(stage):
    """Threads of a job (its `cpus`), capped by --cores; torch uses exactly these."""
    return node_resource(stage, "cpus", 1)


def stage_resources(stage):
    """Per-job cluster resources of a stage, drawn from the run's config."""
    return dict(
        gpu=node_resource(stage, "gpu", 0),
        cpus_per_task=node_resource(stage, "cpus", 1),
        mem_mb=node_resource(stage, "mem_mb", 4000),
        runtime=node_resource(stage, "runtime", 60),
    )


def run_plan(wildcards):
    if wildcards.run not in PLAN.runs:
        raise WorkflowError(f"results/scoder_{wildcards.run}.json: no run '{wildcards.run}' in config "
                            f"(runs: {', '.join(sorted(PLAN.runs))})")
    return PLAN.runs[wildcards.run]


def report_inputs(wildcards):
    """Every file the results of a run are gathered from (stats, logs, benchmarks)."""
    return P.report_files(run_plan(wildcards))


def report_params(wildcards):
    run = run_plan(wildcards)
    stages = [{"stage": n.stage, "key": n.key, "dir": n.dir, "resources": n.resources}
              for n in P.run_nodes(run)]
    return {"run": wildcards.run, "settings": run["settings"], "stages": stages}
