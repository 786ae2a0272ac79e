"""Dev figures of a POS model directory through onnxruntime (the serving code path):
token accuracy with gold segmentation, and from raw text segmentation F1 and seg+POS F1 (word spans),
optionally next to jieba.posseg with its default dictionary, plus throughput of both in chars/s.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

from senpos.pos import PosTagger
from senpos.pos_tags import CORPUS_ERRATA, from_jieba
from senpos.text.chinese import Segmenter, word_key, word_offsets
from training.pos.data import Sentence, load_sentences


def span_f1(gold: Iterable[set], pred: Iterable[set]) -> float:
    tp = n_gold = n_pred = 0
    for g, p in zip(gold, pred, strict=True):
        tp += len(g & p)
        n_gold += len(g)
        n_pred += len(p)
    precision, recall = tp / max(n_pred, 1), tp / max(n_gold, 1)
    return 2 * precision * recall / max(precision + recall, 1e-12)


def _gold(sentences: list[Sentence]) -> tuple[list[set], list[set]]:
    spans = [set(word_offsets(list(s.words))) for s in sentences]
    tagged = [{(a, b, t) for (a, b), t in zip(word_offsets(list(s.words)), s.tags, strict=True)} for s in sentences]
    return spans, tagged


def _scores(gold: list[Sentence], pred: list[tuple[list[tuple[int, int]], list[str]]]) -> dict:
    gold_spans, gold_tagged = _gold(gold)
    pred_spans = [set(offsets) for offsets, _ in pred]
    pred_tagged = [{(a, b, t) for (a, b), t in zip(offsets, tags, strict=True)} for offsets, tags in pred]
    return {"segmentation_f1": span_f1(gold_spans, pred_spans), "seg_pos_f1": span_f1(gold_tagged, pred_tagged)}


def posseg_tokenizer():
    """jieba.posseg with its default dictionary, in a dedicated tokenizer (never jieba's global one), loaded."""
    import jieba
    import jieba.posseg

    tokenizer = jieba.posseg.POSTokenizer(jieba.Tokenizer())
    tokenizer.tokenizer.initialize()
    return tokenizer


def jieba_posseg(texts: list[str]) -> tuple[list[tuple[list[tuple[int, int]], list[str]]], float]:
    """jieba.posseg with its default dictionary (`posseg_tokenizer`); returns predictions and seconds."""
    tokenizer = posseg_tokenizer()
    start = time.perf_counter()
    raw = [list(tokenizer.cut(t)) for t in texts]
    seconds = time.perf_counter() - start
    out = []
    for text, pairs in zip(texts, raw, strict=True):
        offsets, tags, pos = [], [], 0
        for p in pairs:
            if p.word.strip():
                offsets.append((pos, pos + len(p.word)))
                tags.append(from_jieba(p.flag))
            pos += len(p.word)
        assert pos == len(text)
        out.append((offsets, tags))
    return out, seconds


def segmentation_study(sentences: list[Sentence], corpus_dict: Path) -> dict[str, float]:
    """Segmentation F1 of jieba with its default dictionary and with the corpus one, HMM on and off, with and
    without the corpus conventions (dates, dash runs): how the shipped segmenter settings were chosen."""
    gold = [set(word_offsets(list(s.words))) for s in sentences]
    texts = ["".join(s.words) for s in sentences]
    out = {}
    for name, dictionary, hmm, conventions in (
            ("default_dict_hmm", None, True, False), ("default_dict_no_hmm", None, False, False),
            ("corpus_dict_hmm", corpus_dict, True, False), ("corpus_dict_no_hmm", corpus_dict, False, False),
            ("corpus_dict_hmm_conventions", corpus_dict, True, True),
            ("corpus_dict_no_hmm_conventions", corpus_dict, False, True)):
        seg = Segmenter(dictionary, hmm=hmm, conventions=conventions)
        out[name] = round(span_f1(gold, [set(seg.spans(t)) for t in texts]), 4)
    return out


def segmentation_f1(data: str | Path, model_dir: str | Path) -> float:
    """Segmentation F1 of a model directory's segmenter alone (jieba, and its corrector when it ships one)."""
    sentences = load_sentences(data)
    tagger = PosTagger(model_dir, threads=1)
    pred = tagger.segment_texts(["".join(s.words) for s in sentences])
    return span_f1([set(word_offsets(list(s.words))) for s in sentences], [set(p) for p in pred])


def evaluate_file(data: str | Path, model_dir: str | Path, baseline: bool = False, threads: int = 1) -> dict:
    """Dev figures of `model_dir`; throughput on `threads` onnxruntime threads (1: one core, like jieba)."""
    sentences = [Sentence(s.words, tuple(CORPUS_ERRATA.get(t, t) for t in s.tags)) for s in load_sentences(data)]
    texts = ["".join(s.words) for s in sentences]
    tagger = PosTagger(model_dir, threads=threads)

    gold_seg = tagger.tag([list(s.words) for s in sentences])
    correct = sum(p == g for r, s in zip(gold_seg, sentences, strict=True) for p, g in zip(r.tags, s.tags, strict=True))
    total = sum(len(s.words) for s in sentences)
    # Out-of-vocabulary words: the character CNN's job.
    oov = [(p, g) for r, s in zip(gold_seg, sentences, strict=True) for w, p, g in zip(s.words, r.tags, s.tags,
           strict=True) if tagger.words.encode([word_key(w)])[0] == 1]

    start = time.perf_counter()
    raw = tagger.tag(texts)
    seconds = time.perf_counter() - start
    n_chars = sum(map(len, texts))
    result = {
        "data": str(data), "model": str(model_dir), "sentences": len(sentences), "tokens": total,
        "token_accuracy_gold_segmentation": correct / total,
        "oov_tokens": len(oov), "oov_token_accuracy": sum(p == g for p, g in oov) / max(len(oov), 1),
        "end_to_end": _scores(sentences, [(r.offsets, r.tags) for r in raw]),
        "throughput_chars_per_s": {"senpos": n_chars / seconds},
        "provider": tagger.provider,
    }
    if baseline:
        result["segmentation_study"] = segmentation_study(sentences, Path(model_dir) / "jieba_dict.txt")
        pred, jieba_seconds = jieba_posseg(texts)
        result["jieba_posseg_default_dict"] = _scores(sentences, pred)
        result["throughput_chars_per_s"]["jieba_posseg"] = n_chars / jieba_seconds
        result["throughput_chars_per_s"]["ratio"] = jieba_seconds / seconds
    return result
