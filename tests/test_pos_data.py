import json

import pytest

from training.pos.data import Sentence, detect_format, load_sentences, split_sentences

from .conftest import FIXTURES, SHARED_DATA

PFR_TEXT = (
    "19980101-01-001-001/m  迈向/v  充满/v  希望/n  的/u  新/a  世纪/n  。/w  "
    "[中央/n  人民/n  广播/vn  电台/n]nt  报道/v  ！/w  ”/w  标题/n\n"
    "\n"
    "19980101-01-001-002/m  江/nr  泽民/nr  讲话/v  。/w\n"
)
CONLLU = """# sent_id = 1
# text = 我们热爱和平。
1\t我们\t我们\tPRON\tr\t_\t2\tnsubj\t_\t_
2-3\t热爱和平\t_\t_\t_\t_\t_\t_\t_\t_
2\t热爱\t热爱\tVERB\tv\t_\t0\troot\t_\t_
3\t和平\t和平\tNOUN\t_\t_\t2\tobj\t_\t_
4\t。\t。\tPUNCT\tw\t_\t2\tpunct\t_\t_

"""


def test_detect_format(tmp_path):
    assert detect_format("x.jsonl.gz") == "jsonl"
    assert detect_format("zh_gsd-ud-train.conllu") == "conllu"
    assert detect_format("199801.txt") == "pfr"
    with pytest.raises(ValueError, match="unknown format"):
        detect_format("x.xml")


def test_jsonl_fixture():
    sentences = load_sentences(FIXTURES / "pos_tiny.jsonl")
    assert len(sentences) == 12
    assert sentences[0] == Sentence(("我们", "热爱", "和平", "。"), ("r", "v", "n", "w"))


@pytest.mark.parametrize("encoding", ["gbk", "utf-8"])
def test_pfr_text_format_flattens_compounds_and_splits_sentences(tmp_path, encoding):
    path = tmp_path / "199801.txt"
    path.write_bytes(PFR_TEXT.replace("\n", "\r\n").encode(encoding))
    sentences = load_sentences(path)
    assert [s.words for s in sentences] == [
        ("迈向", "充满", "希望", "的", "新", "世纪", "。"),
        ("中央", "人民", "广播", "电台", "报道", "！", "”"),
        ("标题",),
        ("江", "泽民", "讲话", "。"),
    ]
    assert sentences[1].tags == ("n", "n", "vn", "n", "v", "w", "w")


def test_pfr_malformed_token_names_the_line(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("19980101-01-001-001/m  好/a\n19980101-01-001-002/m  坏\n", encoding="utf-8")
    with pytest.raises(ValueError, match="bad.txt:2"):
        load_sentences(path)


def test_conllu_uses_xpos_then_upos(tmp_path):
    path = tmp_path / "t.conllu"
    path.write_text(CONLLU, encoding="utf-8")
    assert load_sentences(path) == [Sentence(("我们", "热爱", "和平", "。"), ("r", "v", "NOUN", "w"))]


def test_split_sentences_keeps_closing_quotes():
    words = ["他", "说", "：", "“", "好", "。", "”", "我", "走", "了"]
    parts = split_sentences(words, ["x"] * len(words))
    assert [p[0] for p in parts] == [words[:7], words[7:]]


def test_jsonl_mismatched_lengths(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps({"words": ["a", "b"], "tags": ["n"]}) + "\n")
    with pytest.raises(ValueError, match="x.jsonl:1"):
        load_sentences(path)


@pytest.mark.skipif(not (SHARED_DATA / "zh_pos").exists(), reason="no ../shared/data")
def test_shared_pfr_dev_loads():
    sentences = load_sentences(SHARED_DATA / "zh_pos" / "pfr1998_01" / "dev.jsonl.gz")
    assert len(sentences) == 4205 and sum(len(s.words) for s in sentences) == 105397
