import csv
import gzip
import http.server
import json
import threading
from pathlib import Path

import pytest

from training.download import download, file_md5
from training.sentiment.data import detect_format, load_reviews, stratified_split

from .conftest import SHARED_DATA


def _summary(reviews):
    return sorted((r.label, r.text) for r in reviews)


def test_formats_are_detected(tmp_path, aclimdb_tree, aclimdb_tarball, reviews_jsonl):
    assert detect_format(aclimdb_tree) == "aclimdb"
    assert detect_format(aclimdb_tarball) == "tarball"
    assert detect_format(reviews_jsonl) == "jsonl"
    assert detect_format(tmp_path / "IMDB Dataset.csv") == "csv"
    with pytest.raises(ValueError, match="unknown format"):
        detect_format(tmp_path / "reviews.parquet")


def test_all_formats_load_the_same_reviews(tmp_path, aclimdb_tree, aclimdb_tarball, reviews_jsonl, fixture_reviews):
    expected = sorted((r["label"], r["text"]) for r in fixture_reviews)
    gz = tmp_path / "reviews.jsonl.gz"
    gz.write_bytes(gzip.compress(reviews_jsonl.read_bytes()))
    csv_path = tmp_path / "IMDB Dataset.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["review", "sentiment"])
        for r in fixture_reviews:
            writer.writerow([r["text"], "positive" if r["label"] else "negative"])
    for source in (aclimdb_tree, aclimdb_tree / "train", aclimdb_tarball, reviews_jsonl, gz, csv_path):
        assert _summary(load_reviews(source)) == expected, source


def test_unsup_split(aclimdb_tree, aclimdb_tarball):
    for source in (aclimdb_tree, aclimdb_tarball):
        texts = [r.text for r in load_reviews(source, split="unsup", include_unlabelled=True)]
        assert texts == ["An unlabelled review."], source


def test_bad_inputs_name_the_problem(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok", "label": 1}\n{"label": 1}\n')
    with pytest.raises(ValueError, match="bad.jsonl:2"):
        load_reviews(bad)
    csv_path = tmp_path / "x.csv"
    csv_path.write_text("text,label\nhello,1\n")
    with pytest.raises(ValueError, match="review,sentiment"):
        load_reviews(csv_path)


def test_stratified_split_is_deterministic_and_balanced(fixture_reviews, reviews_jsonl):
    reviews = load_reviews(reviews_jsonl)
    train, val = stratified_split(reviews, 0.25, seed=1)
    assert len(val) == 6 and sum(r.label for r in val) == 3
    assert set(train).isdisjoint(val) and len(train) + len(val) == len(reviews)
    assert stratified_split(reviews, 0.25, seed=1) == (train, val)


def test_download_over_loopback_checks_md5(tmp_path, aclimdb_tarball):
    served = aclimdb_tarball.parent

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(served), **kw)

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/{aclimdb_tarball.name}"
        good = file_md5(aclimdb_tarball)
        dest = download(url, tmp_path / "dl" / "aclImdb_v1.tar.gz", md5=good)
        assert dest.read_bytes() == aclimdb_tarball.read_bytes()
        assert len(load_reviews(dest)) == 24
        with pytest.raises(ValueError, match="MD5"):
            download(url, tmp_path / "dl2" / "aclImdb_v1.tar.gz", md5="0" * 32)
        assert not list((tmp_path / "dl2").iterdir())  # no partial file left behind
    finally:
        server.shutdown()


def test_cli_prepare_download_uses_the_tarball(tmp_path, aclimdb_tarball, monkeypatch):
    """`prepare --download` fetches, checks the MD5 and trains word2vec from the tarball."""
    import training.sentiment.__main__ as cli

    monkeypatch.setattr(cli, "IMDB_MD5", file_md5(aclimdb_tarball))
    server_dir = aclimdb_tarball.parent

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(server_dir), **kw)

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        cli.main(["prepare", "--download", "--download-url",
                  f"http://127.0.0.1:{server.server_port}/aclImdb_v1.tar.gz", "--download-dir", str(tmp_path / "d"),
                  "--out", str(tmp_path / "prep"), "--min-freq", "1", "--embed-dim", "8", "--w2v-epochs", "1",
                  "--val-fraction", "0.25"])
    finally:
        server.shutdown()
    assert json.loads((tmp_path / "prep" / "prepare.json").read_text())["train"].endswith("aclImdb_v1.tar.gz")


@pytest.mark.skipif(not (SHARED_DATA / "imdb" / "train.jsonl.gz").exists(), reason="no ../shared/data")
def test_shared_imdb_train_loads():
    reviews = load_reviews(SHARED_DATA / "imdb" / "train.jsonl.gz")
    assert len(reviews) == 25000 and sum(r.label for r in reviews) == 12500


def test_real_tarball_md5_constant():
    from training.sentiment.data import IMDB_MD5

    assert IMDB_MD5 == "7c2ac02c03563afcf9b574c7e56c153a"
    assert Path(__file__).exists()
