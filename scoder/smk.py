"""The thin layer between a Snakemake ``script:`` and a stage function.

``with stage(snakemake) as (inp, out, settings):`` sends the job's stdout,
stderr and logging to its ``log:`` file and hands the script its inputs,
outputs and settings; a stage function never sees Snakemake.  Hub models in
the settings arrive as local snapshot folders of the revision the job loads,
recorded beside the log (``scoder.hub``).  A job whose `resources:` family asks
for GPUs it does not see stops there, with the fix in its log (``scoder.device``);
``device(snakemake)`` gives a script the family's dtype, attention and
checkpointing settings.
"""
from __future__ import annotations

import contextlib
import logging
import sys

from scoder.device import DeviceSettings, GPUUnavailable


@contextlib.contextmanager
def stage(snakemake):
    _limit_threads(snakemake.threads)
    log_path = snakemake.log[0] if snakemake.log else None
    if log_path is None:
        device(snakemake).require_gpus()
        yield snakemake.input, snakemake.output, dict(snakemake.params.get("settings", {}))
        return
    with open(log_path, "a", buffering=1, encoding="utf-8") as log:
        saved = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = log
        logging.basicConfig(stream=log, level=logging.INFO, force=True,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        try:
            device(snakemake).require_gpus()  # before any data or model is loaded
            yield snakemake.input, snakemake.output, _with_hub_snapshots(snakemake.params.get("settings", {}),
                                                                          log_path)
        except BaseException as error:
            import traceback
            traceback.print_exc(file=log)
            if isinstance(error, GPUUnavailable):  # also where snakemake's output shows it, not only in the log
                print(f"GPUUnavailable: {error}", file=saved[1], flush=True)
            raise
        finally:
            sys.stdout, sys.stderr = saved


def _with_hub_snapshots(settings: dict, log_path: str) -> dict:
    """A stage instance's settings with each hub model as its snapshot folder; what was loaded
    is written beside its log (``work/<stage>/<key>/hub_models.json``).  Other jobs (results,
    tables) load no model: their settings stay as they are."""
    from pathlib import Path

    from scoder import hub
    from scoder.dag import WORK

    if Path(log_path).parts[:1] != (WORK,):
        return dict(settings)
    settings, models = hub.resolve_settings(dict(settings))
    if models:
        for model, info in models.items():
            print(f"hub model {model}: commit {info['commit']} ({info['folder']})", flush=True)
        hub.record(Path(log_path).parent, models)
    return settings


def device(snakemake) -> DeviceSettings:
    """The job's device settings, from the resources its family gave it."""
    return DeviceSettings.from_resources(snakemake.resources)


def _limit_threads(threads: int) -> None:
    """Keep torch to the job's threads: two jobs on two cores with two threads
    each run many times slower than with one each."""
    import torch

    torch.set_num_threads(max(1, int(threads)))
