from concurrent.futures import ThreadPoolExecutor

from scoder.io import read_jsonl, write_json, write_jsonl
from scoder.ledger import progress_dir
from scoder.llm import make_generator
from scoder.smk import device, stage
from scoder.soda.feedback import classify, execute, score_answers

with stage(snakemake) as (inp, out, s):
    s["generator"] = device(snakemake).generator_spec(s["generator"])  # + family dtype, attention
    answers = read_jsonl(inp.answers)
    scored, score_stats = score_answers(answers, make_generator(s["generator"]),
                                        str(progress_dir(out.stats) / "score"), mode=s["scorer"]["mode"],
                                        max_new_tokens=s["scorer"]["max_new_tokens"], model_name=s["generator"]["model"],
                                        batch_size=s["generator"].get("batch_size", 8))
    with ThreadPoolExecutor(max_workers=max(1, snakemake.threads)) as pool:
        verdicts = list(pool.map(lambda a: execute(a["language"], a["code"], timeout=s.get("timeout", 10)), answers))
    levelled, stats = classify(scored, {a["id"]: v for a, v in zip(answers, verdicts)},
                               easy_min=s.get("easy_min_score", 4), medium_min=s.get("medium_min_score", 2),
                               hard_rule=s.get("hard_rule", "fail_or_low"))
    write_jsonl(out.levels, levelled)
    write_json(out.stats, {"stage": "soda_feedback", "settings": s, **stats,
                           "score_parse_rate": score_stats["parse_rate"], "scorer": score_stats})
