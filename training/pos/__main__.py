"""CLI: python -m training.pos {ship,prepare,train,prune,export,segmenter,export-segmenter,optimize,evaluate} --help"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from senpos.data_root import data_root
from training.cli import add_dataclass_args, pick

DEFAULT_DATA = data_root() / "zh_pos" / "pfr1998_01"


def main(argv: list[str] | None = None) -> None:
    from training.pos.prepare import PrepareConfig
    from training.pos.segmenter import SegmenterConfig
    from training.pos.train import TrainConfig

    parser = argparse.ArgumentParser(prog="python -m training.pos", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    s = sub.add_parser("ship", help="the shipped model's whole recipe (training/pos/ship.py), resumable")
    s.add_argument("--runs", type=Path, default=Path("runs/pos"), help="where each step writes (and resumes)")
    s.add_argument("--out", type=Path, default=Path("models/pos"))
    s.add_argument("--data", type=Path, default=DEFAULT_DATA, help="holds train.jsonl.gz and dev.jsonl.gz")

    p = sub.add_parser("prepare", help="vocabularies, word2vec, the corpus jieba dictionary")
    p.add_argument("--out", type=Path, default=Path("runs/pos/prepared"))
    add_dataclass_args(p, PrepareConfig, skip=("train", "dev"))
    p.add_argument("--train", default=str(DEFAULT_DATA / "train.jsonl.gz"), help="JSONL[.gz], PFR .txt or .conllu")
    p.add_argument("--dev", default=str(DEFAULT_DATA / "dev.jsonl.gz"))

    t = sub.add_parser("train", help="train the tagger on a prepared directory")
    t.add_argument("--prepared", type=Path, default=Path("runs/pos/prepared"))
    t.add_argument("--run", type=Path, default=Path("runs/pos/run"))
    add_dataclass_args(t, TrainConfig)

    r = sub.add_parser("prune", help="a smaller tagger cut out of an exported one (then: train --init-from --teacher)")
    r.add_argument("--teacher", type=Path, default=Path("models/pos"), help="exported model directory")
    r.add_argument("--prepared", type=Path, default=Path("runs/pos/prepared"), help="the teacher's prepared data")
    r.add_argument("--hidden", type=int, required=True, help="units kept per LSTM direction")
    r.add_argument("--run", type=Path, default=Path("runs/pos/pruned"), help="writes RUN/checkpoint.pt")
    r.add_argument("--sentences", type=int, default=5000, help="training sentences that measure the units' use")

    g = sub.add_parser("segmenter", help="train the character model that corrects jieba's segmentation")
    g.add_argument("--run", type=Path, default=Path("runs/pos/segmenter"))
    add_dataclass_args(g, SegmenterConfig, skip=("train", "dev"))
    g.add_argument("--train", default=str(DEFAULT_DATA / "train.jsonl.gz"))
    g.add_argument("--dev", default=str(DEFAULT_DATA / "dev.jsonl.gz"))

    x = sub.add_parser("export-segmenter", help="add a trained segmentation corrector to a model directory")
    x.add_argument("--run", type=Path, default=Path("runs/pos/segmenter"))
    x.add_argument("--out", type=Path, default=Path("models/pos"))
    x.add_argument("--min-bigram-count", type=int, default=0,
                   help="keep only bigrams seen this often in training, in an int8 table (0: all, float32)")

    e = sub.add_parser("export", help="export a checkpoint to ONNX (with a parity check) as a model directory")
    e.add_argument("--prepared", type=Path, default=Path("runs/pos/prepared"))
    e.add_argument("--run", type=Path, default=Path("runs/pos/run"))
    e.add_argument("--out", type=Path, default=Path("models/pos"))

    o = sub.add_parser("optimize", help="an older single-graph export -> features split out, int8 tagger and corrector")
    o.add_argument("model", type=Path, help="exported model directory (model.onnx with word ids as input)")
    o.add_argument("--out", type=Path, required=True)
    o.add_argument("--calibration", default=str(DEFAULT_DATA / "train.jsonl.gz"),
                   help="texts that set the corrector's int8 scales (the first --sentences)")
    o.add_argument("--sentences", type=int, default=2000)

    v = sub.add_parser("evaluate", help="token accuracy, segmentation F1 and seg+POS F1 of a model directory")
    v.add_argument("data", nargs="?", default=str(DEFAULT_DATA / "dev.jsonl.gz"))
    v.add_argument("--model", type=Path, default=Path("models/pos"))
    v.add_argument("--baseline", action="store_true", help="also score jieba.posseg and compare throughput")
    v.add_argument("--out", type=Path, help="write the result JSON here too")
    v.add_argument("--threads", type=int, default=1, help="onnxruntime threads (1: one core, as jieba uses)")
    v.add_argument("--segmentation-only", action="store_true", help="only the segmentation F1 (quick)")

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "ship":
        from training.pos.ship import ship

        print(json.dumps(ship(args.runs, args.out, args.data), indent=2))
    elif args.command == "prepare":
        from training.pos.prepare import prepare

        prepare(pick(args, PrepareConfig), args.out)
    elif args.command == "train":
        from training.pos.train import train

        metrics = train(args.prepared, args.run, pick(args, TrainConfig))
        print(json.dumps({k: metrics[k] for k in ("dev_token_accuracy", "best_epoch", "parameters")}))
    elif args.command == "prune":
        from training.pos.prune import prune_teacher

        print(json.dumps(prune_teacher(args.teacher, args.prepared, args.hidden, args.run, args.sentences)))
    elif args.command == "segmenter":
        from training.pos.segmenter import train_segmenter

        metrics = train_segmenter(pick(args, SegmenterConfig), args.run)
        print(json.dumps({k: metrics[k] for k in ("dev_seg_f1", "jieba_dev_seg_f1", "parameters")}))
    elif args.command == "export-segmenter":
        from training.pos.segmenter import export_segmenter

        export_segmenter(args.run, args.out, args.min_bigram_count)
    elif args.command == "export":
        from training.pos.export import export

        export(args.run, args.prepared, args.out)
    elif args.command == "optimize":
        from training.pos.data import load_sentences
        from training.pos.optimize import optimize_dir

        texts = ["".join(s.words) for s in load_sentences(args.calibration)[: args.sentences]]
        print(json.dumps(optimize_dir(args.model, args.out, texts)))
    elif args.command == "evaluate":
        from training.pos.evaluate import evaluate_file, segmentation_f1

        if args.segmentation_only:
            print(json.dumps({"data": args.data, "model": str(args.model),
                              "segmentation_f1": segmentation_f1(args.data, args.model)}))
            return
        result = evaluate_file(args.data, args.model, baseline=args.baseline, threads=args.threads)
        if args.out:
            args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False))
        print(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
