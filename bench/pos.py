"""/pos-tag against jieba.posseg on this machine (`python -m bench.pos`; issue 15's figures):

1. the service with its default settings (`bentoml serve`, SENPOS_API_WORKERS workers): client-batched (64
   sentences per request, 2, 4 and 8 requests in flight: 8 keeps both workers busy however the connections fall
   on them) and one sentence per request (32 in flight), chars/s;
   the load generator runs on the same machine and its CPU share is in the table. This machine's speed drifts
   (jieba.posseg alone has varied by 30% between runs), so jieba.posseg runs again, in this process with the
   server idle, right before and after each measurement, and each row is compared with those two runs;
2. in one process on one core (training.pos.speed, interleaved passes, best of `--repeats`): the whole pipeline
   (PosTagger.tag), segmentation alone, the tagger alone, and jieba.posseg with its default dictionary.

Payloads: dev sentences drawn with a fixed seed. Results: bench/results/pos-<date>.json and .md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from pathlib import Path

from bench.harness import REPO, running_server
from bench.loadgen import closed_loop
from bench.payloads import sentences
from service.settings import SETTINGS
from training.pos.evaluate import posseg_tokenizer
from training.pos.speed import measure


class JiebaPosseg:
    """jieba.posseg with its default dictionary, loaded once; `rate()` is the best of two passes, chars/s."""

    def __init__(self, texts: list[str]):
        self.texts, self.chars, self.tokenizer = texts, sum(map(len, texts)), posseg_tokenizer()

    def rate(self) -> float:
        best = float("inf")
        for _ in range(2):
            start = time.perf_counter()
            for t in self.texts:
                list(self.tokenizer.cut(t))
            best = min(best, time.perf_counter() - start)
        return self.chars / best


def service_rows(base: str, texts: list[str], seconds: float) -> list[dict]:
    chars_per_text = sum(map(len, texts)) / len(texts)
    batches = [{"texts": texts[i: i + 64]} for i in range(0, len(texts), 64)]
    singles = [{"texts": [t]} for t in texts]
    jieba = JiebaPosseg(texts)
    asyncio.run(closed_loop(base, "/pos-tag", batches, 2, min(seconds, 3.0), 64))  # warm-up: word caches
    rows = []
    for name, payloads, items, level in (("batched_64", batches, 64, 2), ("batched_64", batches, 64, 4),
                                         ("batched_64", batches, 64, 8), ("one_per_request", singles, 1, 32)):
        before = jieba.rate()
        row = asyncio.run(closed_loop(base, "/pos-tag", payloads, level, seconds, items)).summary()
        around = [round(before), round(jieba.rate())]
        row.update(name=name, chars_per_s=round(row["items_per_s"] * chars_per_text), jieba_posseg_around=around,
                   vs_jieba=round(row["items_per_s"] * chars_per_text / (sum(around) / 2), 2))
        rows.append(row)
        print(f"  {name} c={level}: {row['chars_per_s']} chars/s ({row['vs_jieba']}x jieba.posseg at {around})  "
              f"p50 {row['p50_ms']} ms  p99 {row['p99_ms']} ms  {row['statuses']}", flush=True)
    return rows


def report(result: dict) -> str:
    jieba = result["in_process"]["chars_per_s"]["jieba_posseg"]
    lines = [f"# /pos-tag against jieba.posseg ({result['date']})", "", f"`{result['command']}` on "
             f"{result['machine']['cpus']} CPUs; model `{result['model']}`; {result['sentences']} dev sentences, "
             f"{result['chars_per_sentence']} characters each on average.", "",
             "| what | chars/s | jieba.posseg, one process, chars/s | ratio | p50 / p99 ms | load generator CPU |",
             "|---|---|---|---|---|---|"]
    for row in result["service"]:
        lines.append(f"| service, {row['name']}, {row['level']} in flight | {row['chars_per_s']} | "
                     f"{' / '.join(map(str, row['jieba_posseg_around']))} (before / after) | {row['vs_jieba']}x | "
                     f"{row['p50_ms']} / {row['p99_ms']} | {row['loadgen_cpu_percent']}% |")
    for name, rate in result["in_process"]["chars_per_s"].items():
        if name != "jieba_posseg":
            lines.append(f"| one process, one core: {name.split(':')[-1].replace('_', ' ')} | {rate} | {jieba} "
                         f"(interleaved) | {rate / jieba:.2f}x | | |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=SETTINGS.pos_model)
    parser.add_argument("--sentences", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=20.0, help="per service measurement")
    parser.add_argument("--repeats", type=int, default=3, help="in-process passes per system")
    parser.add_argument("--smoke", action="store_true", help="seconds-long run on the fixtures (not kept)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--name", default="pos-" + time.strftime("%Y-%m-%d"))
    args = parser.parse_args()
    texts = sentences(args.sentences, seed=1, smoke=args.smoke)
    seconds = 1.0 if args.smoke else args.seconds
    result = {"date": time.strftime("%Y-%m-%d %H:%M"), "command": "python -m bench.pos " + " ".join(sys.argv[1:]),
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count()}, "model": str(args.model),
              "sentences": len(texts), "chars_per_sentence": round(sum(map(len, texts)) / len(texts), 1)}
    print("service", flush=True)
    with running_server({"SENPOS_POS_MODEL": str(args.model.resolve())}) as base:
        result["service"] = service_rows(base, texts, seconds)
    print("in one process", flush=True)
    result["in_process"] = measure([args.model], texts, 1 if args.smoke else args.repeats)
    print(json.dumps(result["in_process"]["chars_per_s"]), flush=True)
    out = args.out / ("smoke" if args.smoke else "")
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.json").write_text(json.dumps(result, indent=2))
    (out / f"{args.name}.md").write_text(report(result))
    print(report(result))


if __name__ == "__main__":
    main()
