"""SODA (Self-Paced knOwledge DistillAtion, FSE 2025) on the project's building blocks.

One distillation cycle, each stage a module with plain functions:

* ``questions`` — the initial seed knowledge (questions), decontaminated;
* ``knowledge`` — Stage I: the teacher's correct and faulty solution per question,
  the 80/20 split, SFT examples (correctness-aware supervised learning) and DPO
  pairs (fault-aware contrastive learning, eq. 2);
* ``feedback`` — Stage II: the student's answers judged by a scoring model (1-6
  points over five rules) and by sandboxed execution (Pass/Fail), and the
  easy / medium / hard split;
* ``update`` — Stage III: new questions from each difficulty level (1:1:2);
* ``evaluate`` — pass@1, pass@10 and the model score on the benchmarks;
* ``plan`` / ``report`` — the content-keyed DAG and ``results/soda_<run>.json``.

LLM calls go through ``scoder.llm`` (``scoder.llm.make_generator``), training
through ``scoder.training`` (TRL), execution through ``scoder.sandbox``.
"""
