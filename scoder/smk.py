"""The thin layer between a Snakemake ``script:`` and a stage function.

``with stage(snakemake) as (inp, out, settings):`` sends the job's stdout,
stderr and logging to its ``log:`` file and hands the script its inputs,
outputs and settings; a stage function never sees Snakemake.  A job whose
`resources:` family asks for GPUs it does not see stops there, with the fix in its
log (``scoder.device``); ``device(snakemake)`` gives a script the family's dtype,
attention and checkpointing settings.
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
            yield snakemake.input, snakemake.output, dict(snakemake.params.get("settings", {}))
        except BaseException as error:
            import traceback
            traceback.print_exc(file=log)
            if isinstance(error, GPUUnavailable):  # also where snakemake's output shows it, not only in the log
                print(f"GPUUnavailable: {error}", file=saved[1], flush=True)
            raise
        finally:
            sys.stdout, sys.stderr = saved


def device(snakemake) -> DeviceSettings:
    """The job's device settings, from the resources its family gave it."""
    return DeviceSettings.from_resources(snakemake.resources)


def _limit_threads(threads: int) -> None:
    """Keep torch to the job's threads: two jobs on two cores with two threads
    each run many times slower than with one each."""
    import torch

    torch.set_num_threads(max(1, int(threads)))
