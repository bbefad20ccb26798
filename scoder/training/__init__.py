"""Fine-tuning: ``trainer`` (TRL's SFT and DPO, the command line), ``checkpoints`` (resumable runs
exporting M checkpoints) and ``launch`` (a workflow stage's training: in process or under
``accelerate launch``, its checkpoints published into the declared outputs)."""
