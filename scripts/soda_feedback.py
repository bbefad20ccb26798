from scoder.io import read_jsonl, write_json, write_jsonl
from scoder.ledger import progress_dir
from scoder.llm import make_generator
from scoder.smk import device, stage
from scoder.soda.feedback import multi_view_feedback, score_answers

with stage(snakemake) as (inp, out, s):
    s["generator"] = device(snakemake).generator_spec(s["generator"])  # + family dtype, attention

    def score(answers):
        return score_answers(answers, make_generator(s["generator"]), str(progress_dir(out.stats) / "score"),
                             mode=s["scorer"]["mode"], max_new_tokens=s["scorer"]["max_new_tokens"],
                             model_name=s["generator"]["model"], batch_size=s["generator"].get("batch_size", 8))

    levelled, stats = multi_view_feedback(read_jsonl(inp.answers), views=s["views"], score=score,
                                          workers=snakemake.threads, timeout=s.get("timeout", 10),
                                          easy_min=s.get("easy_min_score", 4), medium_min=s.get("medium_min_score", 2),
                                          hard_rule=s.get("hard_rule", "fail_or_low"))
    write_jsonl(out.levels, levelled)
    write_json(out.stats, {"stage": "soda_feedback", "settings": s, **stats})
