"""CLI: python -m training.sentiment {ship,prepare,train,export,evaluate} --help"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from senpos.data_root import data_root
from training.cli import add_dataclass_args, pick
from training.sentiment.data import IMDB_MD5, IMDB_URL

DEFAULT_DATA = data_root() / "imdb"


def main(argv: list[str] | None = None) -> None:
    from training.sentiment.prepare import PrepareConfig
    from training.sentiment.train import TrainConfig

    parser = argparse.ArgumentParser(prog="python -m training.sentiment", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    s = sub.add_parser("ship", help="the shipped model's whole recipe (training/sentiment/ship.py), resumable")
    s.add_argument("--runs", type=Path, default=Path("runs/sentiment"), help="where each step writes (and resumes)")
    s.add_argument("--out", type=Path, default=Path("models/sentiment"))
    s.add_argument("--data", type=Path, default=DEFAULT_DATA, help="holds train.jsonl.gz and unsup.jsonl.gz")

    p = sub.add_parser("prepare", help="tokenise, grouped fit/select/report split, vocabulary, word2vec")
    p.add_argument("--out", type=Path, default=Path("runs/sentiment/prepared"))
    p.add_argument("--download", action="store_true", help=f"fetch {IMDB_URL} (MD5-checked) first")
    p.add_argument("--download-url", default=IMDB_URL, help=argparse.SUPPRESS)
    p.add_argument("--download-dir", type=Path, default=Path("data"))
    add_dataclass_args(p, PrepareConfig, skip=("train",))
    p.add_argument("--train", default=str(DEFAULT_DATA / "train.jsonl.gz"),
                   help="labelled reviews: aclImdb dir, .tar.gz, .jsonl[.gz] or .csv")
    p.set_defaults(unsup=str(DEFAULT_DATA / "unsup.jsonl.gz"))

    t = sub.add_parser("train", help="train the BiLSTM on a prepared directory")
    t.add_argument("--prepared", type=Path, default=Path("runs/sentiment/prepared"))
    t.add_argument("--run", type=Path, default=Path("runs/sentiment/run"))
    add_dataclass_args(t, TrainConfig)

    e = sub.add_parser("export", help="export a checkpoint to ONNX (with a parity check) as a model directory")
    e.add_argument("--prepared", type=Path, default=Path("runs/sentiment/prepared"))
    e.add_argument("--run", type=Path, default=Path("runs/sentiment/run"))
    e.add_argument("--out", type=Path, default=Path("models/sentiment"))

    v = sub.add_parser("evaluate", help="score a labelled file with an exported model directory")
    v.add_argument("data", help="aclImdb dir, .tar.gz, .jsonl[.gz] or .csv")
    v.add_argument("--split", default="test", help="split inside an aclImdb dir or tarball")
    v.add_argument("--model", type=Path, default=Path("models/sentiment"))

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    if args.command == "ship":
        from training.sentiment.ship import ship

        print(json.dumps(ship(args.runs, args.out, args.data), indent=2))
    elif args.command == "prepare":
        from training.download import download
        from training.sentiment.prepare import prepare

        if args.download:
            tarball = download(args.download_url, args.download_dir / "aclImdb_v1.tar.gz", md5=IMDB_MD5)
            args.train, args.unsup = str(tarball), str(tarball)
        prepare(pick(args, PrepareConfig), args.out)
    elif args.command == "train":
        from training.sentiment.train import train

        metrics = train(args.prepared, args.run, pick(args, TrainConfig))
        print(json.dumps({k: metrics[k] for k in ("val_accuracy", "best_epoch", "parameters")}))
    elif args.command == "export":
        from training.sentiment.export import export

        export(args.run, args.prepared, args.out)
    elif args.command == "evaluate":
        from training.sentiment.evaluate import evaluate_file

        print(json.dumps(evaluate_file(args.data, args.model, split=args.split), indent=2))


if __name__ == "__main__":
    main()
