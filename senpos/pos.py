"""POS tagger predictor: text -> jieba words (corpus dictionary), corrected by a character model when the model
directory ships one -> ONNX BiLSTM tags; onnxruntime only."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np

from senpos.pos_tags import to_upos
from senpos.runtime import ModelLoadError, load_vocabs, measure_cost, open_model, plan_batches, require_files
from senpos.text.chinese import (
    Lexicon,
    Segmenter,
    boundary_features,
    char_keys,
    spans_from_starts,
    word_key,
    word_offsets,
)
from senpos.text.vocab import Vocab
from senpos.viterbi import TagBigrams

Encoded = tuple[np.ndarray, list[np.ndarray], np.ndarray]  # word ids, char ids per word, lexicon ids
Piece = tuple[np.ndarray, np.ndarray, np.ndarray]  # word ids [n], char ids [n, width], lexicon ids [n]
FILES = ("features.onnx", "model.onnx", "words.json", "chars.json", "tags.json", "lexicon_tags.json", "jieba_dict.txt",
         "config.json")
INT8_TAGGER = "model.int8.onnx"  # the tagger with int8 LSTMs (training/pos/optimize.py): used on CPU when present
WORD_CACHE = 200_000  # words whose encoding PosTagger remembers (a few tens of MB at most)
UNK_ID = 1
CORRECTOR_FILES = ("segmenter.onnx", "seg_chars.json", "seg_bigrams.json")


@dataclass
class Tagged:
    words: list[str]
    tags: list[str]
    offsets: list[tuple[int, int]]

    def upos(self) -> list[str]:
        return [to_upos(t) for t in self.tags]

    def as_json(self) -> dict:
        """The /pos-tag answer for one item."""
        return {"words": self.words, "tags": self.tags, "upos": self.upos(), "offsets": [list(o) for o in self.offsets]}


def vocab_digest(*vocabs: Vocab) -> str:
    """Stored in the ONNX metadata at export, so mismatched vocabularies are caught at load."""
    return hashlib.sha256("\x00".join("\n".join(v.itos) for v in vocabs).encode("utf-8")).hexdigest()


def windows(n: int, size: int, context: int) -> list[tuple[int, int, int, int]]:
    """Cut n words into windows of at most `size`; each word's tag comes from a window where it has
    `context` words of context on both sides (except at the ends). Returns (start, end, keep_from, keep_to)."""
    if n <= size:
        return [(0, n, 0, n)]
    context = min(context, (size - 1) // 2)  # a window always decides at least one word
    step = size - 2 * context
    out = []
    for keep_from in range(0, n, step):
        keep_to = min(n, keep_from + step)
        start = max(0, keep_from - context)
        end = min(n, start + size)
        out.append((start, end, keep_from, keep_to))
    return out


Cut = Sequence[tuple[Piece, int, int]]  # one sentence's pieces: (piece, keep_from, keep_to)


def stitch(cut: Sequence[Cut], scores: Sequence[np.ndarray], tags: int) -> list[np.ndarray]:
    """Each sentence's scores from its pieces' scores (`scores` in the order of the flattened `cut`)."""
    out, k = [], 0
    for ps in cut:
        rows = []
        for _, keep_from, keep_to in ps:
            rows.append(scores[k][keep_from:keep_to])
            k += 1
        out.append(np.concatenate(rows) if rows else np.zeros((0, tags), dtype=np.float32))
    return out


class BoundaryCorrector:
    """The character model that corrects jieba's words (training/pos/segmenter.py): for each character of a text,
    from its key, the bigram ending at it and its place in jieba's word, whether a word begins there.
    Texts longer than `max_chars` are read in overlapping windows (`context` characters each side)."""

    def __init__(self, model_dir: Path, threads: int = 0, provider: str | None = None, max_batch: int = 64,
                 max_chars: int = 300, context: int = 30):
        require_files(model_dir, CORRECTOR_FILES)
        self.chars, self.bigrams = load_vocabs(model_dir / "seg_chars.json", model_dir / "seg_bigrams.json")
        self.session = open_model(model_dir / "segmenter.onnx", vocab_digest(self.chars, self.bigrams),
                                  "seg_chars.json/seg_bigrams.json", threads, provider)
        self.max_batch, self.max_chars, self.context = max_batch, max_chars, context
        self.cost = measure_cost(lambda n, length: self._run(*(np.ones((n, length), dtype=np.int64),) * 3,
                                                             np.full(n, length, dtype=np.int64)), max_batch)

    def _run(self, chars: np.ndarray, bigrams: np.ndarray, places: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"chars": chars, "bigrams": bigrams, "places": places, "lengths": lengths})[0]

    def encode(self, text: str, jieba_spans: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The model's inputs for one text: character ids, bigram ids, places in jieba's words."""
        keys, bigrams, places = boundary_features(text, jieba_spans)
        return (np.asarray(self.chars.encode(keys), dtype=np.int64), np.asarray(self.bigrams.encode(bigrams),
                dtype=np.int64), np.asarray(places, dtype=np.int64))

    @staticmethod
    def pad(batch: Sequence[tuple[np.ndarray, ...]]) -> tuple[np.ndarray, ...]:
        """One model call's inputs (chars, bigrams, places padded to the longest text, lengths)."""
        lengths = np.array([len(c) for c, _, _ in batch], dtype=np.int64)
        arrays = np.zeros((3, len(batch), int(lengths.max())), dtype=np.int64)
        for row, encoded in enumerate(batch):
            for k in range(3):
                arrays[k, row, : lengths[row]] = encoded[k]
        return arrays[0], arrays[1], arrays[2], lengths

    def correct(self, texts: Sequence[str], jieba_spans: Sequence[list[tuple[int, int]]]
                ) -> list[list[tuple[int, int]]]:
        """Word spans of each text, from jieba's spans and the model; whitespace is never part of a word."""
        encoded = [self.encode(text, spans) for text, spans in zip(texts, jieba_spans, strict=True)]
        pieces = [(s, *win) for s, (c, *_) in enumerate(encoded) if len(c)
                  for win in windows(len(c), self.max_chars, self.context)]
        starts = [np.zeros(len(text), dtype=bool) for text in texts]
        for batch in plan_batches([p[2] - p[1] for p in pieces], self.max_batch, self.cost):
            scores = self._run(*self.pad([tuple(a[start:end] for a in encoded[s]) for s, start, end, _, _ in
                                          (pieces[i] for i in batch)]))
            for row, i in enumerate(batch):
                s, start, _, keep_from, keep_to = pieces[i]
                starts[s][keep_from:keep_to] = scores[row, keep_from - start : keep_to - start] > 0
        return [spans_from_starts(text, st) for text, st in zip(texts, starts, strict=True)]


class WordFeatures:
    """features.onnx: each word's input to the tagger's LSTMs (word embedding, character CNN, lexicon feature).

    A vocabulary word's features depend on its id alone (its characters and lexicon tag come from the same key),
    so they are computed once, at load, into a table; only out-of-vocabulary words run the model, grouped by their
    exact number of characters, so no word is ever padded and its features never depend on its neighbours."""

    def __init__(self, session, words: Vocab, chars: Vocab, lexicon: Lexicon | None, chunk: int = 2048):
        self.session, self.inputs = session, [i.name for i in session.get_inputs()]
        by_width: dict[int, list[int]] = {}
        for i, key in enumerate(words.itos[2:], start=2):
            by_width.setdefault(len(char_keys(key)) or 1, []).append(i)
        parts = []
        for width, ids in by_width.items():
            for start in range(0, len(ids), chunk):
                rows = np.array(ids[start: start + chunk], dtype=np.int64)
                grid = np.array([chars.encode(char_keys(words.itos[i])) or [UNK_ID] for i in rows], dtype=np.int64)
                lex = np.array([lexicon.ids.get(words.itos[i], 0) if lexicon else 0 for i in rows], dtype=np.int64)
                parts.append((rows, self.compute(rows, grid.reshape(len(rows), width), lex)))
        one = np.ones(1, dtype=np.int64)
        dim = (parts[0][1] if parts else self.compute(one, one[:, None], one * 0)).shape[1]
        self.table = np.zeros((len(words), dim), dtype=np.float32)  # rows 0 (padding) and 1 (unknown) stay zero
        for rows, values in parts:
            self.table[rows] = values

    def compute(self, words: np.ndarray, chars: np.ndarray, lex: np.ndarray) -> np.ndarray:
        """Features of k words (ids [k], character ids [k, width], lexicon ids [k]), all of the same width."""
        feeds = {"words": words[None], "chars": chars[None], "lex": lex[None]}
        return self.session.run(None, {k: feeds[k] for k in self.inputs})[0][0]

    def __call__(self, words: np.ndarray, chars: np.ndarray, lex: np.ndarray) -> np.ndarray:
        """Features (batch, time, dim) of a padded batch: the table's rows, the unknown words computed."""
        out = self.table[words]
        unknown = words == UNK_ID
        if unknown.any():
            ids, grid, lexicon = words[unknown], chars[unknown], lex[unknown]
            widths = (grid != 0).sum(axis=1)
            values = np.empty((len(ids), self.table.shape[1]), dtype=np.float32)
            for width in np.unique(widths):
                same = widths == width
                values[same] = self.compute(ids[same], grid[same, :width], lexicon[same])
            out[unknown] = values
        return out


class PosTagger:
    """Load `model_dir` and tag raw texts (segmented here) or pre-segmented word lists (kept as given).
    `precision`: "auto" runs the int8 tagger on CPU when the directory has one and float32 on a GPU."""

    def __init__(self, model_dir: str | Path, threads: int = 0, provider: str | None = None, max_batch: int = 64,
                 word_cache: int = WORD_CACHE, precision: str = "auto"):
        self.model_dir = Path(model_dir)
        if precision not in ("auto", "int8", "float"):
            raise ValueError(f"precision must be auto, int8 or float, not {precision!r}")
        if (self.model_dir / "model.onnx").is_file() and not (self.model_dir / "features.onnx").is_file():
            raise ModelLoadError(f"{self.model_dir / 'features.onnx'}: missing; a directory exported before the served "
                                 f"form: python -m training.pos optimize {self.model_dir} --out {self.model_dir}")
        require_files(self.model_dir, FILES)
        try:
            self.config = json.loads((self.model_dir / "config.json").read_text(encoding="utf-8"))
            self.tags = json.loads((self.model_dir / "tags.json").read_text(encoding="utf-8"))
            lexicon_tags = json.loads((self.model_dir / "lexicon_tags.json").read_text(encoding="utf-8"))
            seg = self.config["segmentation"]
            self.max_words, self.context = int(self.config["max_words"]), int(self.config["window_context"])
        except (ValueError, KeyError, TypeError) as e:
            raise ModelLoadError(f"{self.model_dir / 'config.json'}: invalid config ({e})") from e
        self.words, self.chars = load_vocabs(self.model_dir / "words.json", self.model_dir / "chars.json")
        digest = vocab_digest(self.words, self.chars)
        features = open_model(self.model_dir / "features.onnx", digest, "words.json/chars.json", threads, provider)
        self.provider = features.get_providers()[0]
        int8 = (self.model_dir / INT8_TAGGER).is_file() and (
            precision == "int8" or (precision == "auto" and self.provider == "CPUExecutionProvider"))
        self.tagger_file = self.model_dir / (INT8_TAGGER if int8 else "model.onnx")
        self.session = open_model(self.tagger_file, digest, "words.json/chars.json", threads, provider)
        for session, name in ((features, "features.onnx"), (self.session, self.tagger_file.name)):
            meta = session.get_modelmeta().custom_metadata_map
            if meta.get("tags") != json.dumps(self.tags):
                raise ModelLoadError(f"{self.model_dir / 'tags.json'}: tags do not match {name}")
            if meta.get("lexicon_tags", "[]") != json.dumps(lexicon_tags):
                raise ModelLoadError(f"{self.model_dir / 'lexicon_tags.json'}: lexicon tags do not match {name}")
        self.lexicon = Lexicon(lexicon_tags) if "lex" in [i.name for i in features.get_inputs()] else None
        self.features = WordFeatures(features, self.words, self.chars, self.lexicon)
        bigrams = self.model_dir / "tag_bigrams.json"  # optional: constrained decoding, when dev said it pays
        try:
            self.bigrams = TagBigrams.load(bigrams) if bigrams.exists() else None
        except (ValueError, KeyError) as e:
            raise ModelLoadError(f"{bigrams}: invalid ({e})") from e
        if self.bigrams is not None and self.bigrams.transitions.shape != (len(self.tags), len(self.tags)):
            raise ModelLoadError(f"{bigrams}: {self.bigrams.transitions.shape} transitions for {len(self.tags)} tags")
        try:
            self.segmenter = Segmenter(self.model_dir / "jieba_dict.txt", hmm=bool(seg["hmm"]),
                                       conventions=bool(seg["conventions"]))
        except Exception as e:  # jieba raises plain ValueErrors on malformed dictionary lines
            raise ModelLoadError(f"{self.model_dir / 'jieba_dict.txt'}: cannot load ({e})") from e
        self.corrector = (BoundaryCorrector(self.model_dir, threads=threads, provider=provider, max_batch=max_batch)
                          if seg.get("corrector") else None)
        self.max_batch = max_batch
        self._word_cache: dict[str, tuple[int, np.ndarray, int]] = {}
        self.word_cache = word_cache
        self.cost = measure_cost(self._dummy_run, max_batch)

    def _dummy_run(self, n: int, length: int) -> np.ndarray:
        words = np.full((n, length), 2, dtype=np.int64)  # a vocabulary word, as most are
        lengths = np.full(n, length, dtype=np.int64)
        return self.scores_batch(words, np.ones((n, length, 2), dtype=np.int64), np.zeros_like(words), lengths)

    def steps(self, piece: Piece) -> float:
        """A piece's model cost in the cost model's steps: its words."""
        return len(piece[0])

    def scores_batch(self, words: np.ndarray, chars: np.ndarray, lex: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Tag scores (batch, time, tags) of one padded batch (`pad`): one model call."""
        return self.session.run(None, {"features": self.features(words, chars, lex), "lengths": lengths})[0]

    def segment_texts(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        """Word spans of raw texts: jieba's, corrected by the character model when there is one."""
        spans = [self.segmenter.spans(t) for t in texts]
        return self.corrector.correct(texts, spans) if self.corrector and texts else spans

    def segment_many(self, items: Sequence[str | Sequence[str]]) -> list[tuple[list[str], list[tuple[int, int]]]]:
        """Raw texts are segmented (together); word lists are kept exactly, offsets into their concatenation."""
        raw = [i for i, item in enumerate(items) if isinstance(item, str)]
        spans = dict(zip(raw, self.segment_texts([cast(str, items[i]) for i in raw]), strict=True))
        out: list[tuple[list[str], list[tuple[int, int]]]] = []
        for i, item in enumerate(items):
            if isinstance(item, str):  # exactly the items in `spans`
                out.append(([item[a:b] for a, b in spans[i]], spans[i]))
            else:
                words = list(item)
                out.append((words, word_offsets(words)))
        return out

    def segment(self, item: str | Sequence[str]) -> tuple[list[str], list[tuple[int, int]]]:
        """A raw text is segmented; a word list is kept exactly, offsets into its concatenation."""
        return self.segment_many([item])[0]

    def encode_word(self, word: str) -> tuple[int, np.ndarray, int]:
        """(word id, character ids, lexicon id) of one word, remembered: most words of a text are frequent ones,
        so most words cost one dictionary lookup. At most `word_cache` words are kept (the first ones seen)."""
        hit = self._word_cache.get(word)
        if hit is None:
            key = word_key(word)
            hit = (self.words.stoi.get(key, 1), np.asarray(self.chars.encode(char_keys(word)) or [1], dtype=np.int64),
                   self.lexicon.ids.get(key, 0) if self.lexicon else 0)
            if len(self._word_cache) < self.word_cache:
                self._word_cache[word] = hit
        return hit

    def encode(self, words: Sequence[str]) -> Encoded:
        """Words -> (word ids, character ids per word, lexicon ids): the tagger's CPU-side preprocessing."""
        encoded = [self.encode_word(w) for w in words]
        return (np.fromiter((e[0] for e in encoded), dtype=np.int64, count=len(encoded)), [e[1] for e in encoded],
                np.fromiter((e[2] for e in encoded), dtype=np.int64, count=len(encoded)))

    def pieces(self, encoded: Encoded) -> list[tuple[Piece, int, int]]:
        """Cut one encoded sentence into model inputs of at most `max_words` words (windows with context):
        (piece, keep_from, keep_to), where the piece's rows keep_from:keep_to are the words it decides.
        Only unknown words' characters are read (WordFeatures), so only their rows of the grid are filled."""
        w, chars, lex = encoded
        out = []
        for start, end, keep_from, keep_to in windows(len(w), self.max_words, self.context):
            unknown = np.flatnonzero(w[start:end] == UNK_ID)
            grid = np.zeros((end - start, max((len(chars[start + j]) for j in unknown), default=1)), dtype=np.int64)
            for j in unknown:
                grid[j, : len(chars[start + j])] = chars[start + j]
            out.append(((w[start:end], grid, lex[start:end]), keep_from - start, keep_to - start))
        return out

    def scores_pieces(self, pieces: Sequence[Piece]) -> list[np.ndarray]:
        """Tag scores (words x tags) for each piece, in order: the model call. Pieces are batched with others
        of similar length (runtime.plan_batches), padded only to the longest of their batch."""
        return self.scores_pieces_costed(pieces)[0]

    @staticmethod
    def pad(batch: Sequence[Piece]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """One model call's inputs: word ids, character ids and lexicon ids padded to the batch's longest piece
        (and word), and the pieces' lengths."""
        lengths = np.array([max(len(p[0]), 1) for p in batch], dtype=np.int64)
        width = max(p[1].shape[1] for p in batch)
        words = np.zeros((len(batch), int(lengths.max())), dtype=np.int64)
        lex = np.zeros_like(words)
        chars = np.zeros((len(batch), int(lengths.max()), width), dtype=np.int64)
        for row, (w, c, x) in enumerate(batch):
            words[row, : len(w)], lex[row, : len(w)] = w, x
            chars[row, : len(w), : c.shape[1]] = c
        return words, chars, lex, lengths

    def scores_pieces_costed(self, pieces: Sequence[Piece]) -> tuple[list[np.ndarray], float]:
        """`scores_pieces`, and the seconds the cost model predicted for the calls it made."""
        out, predicted = [], 0.0
        order: list[int] = []
        for batch in plan_batches([max(len(p[0]), 1) for p in pieces], self.max_batch, self.cost):
            words, chars, lex, lengths = self.pad([pieces[i] for i in batch])
            scores = self.scores_batch(words, chars, lex, lengths)
            predicted += self.cost(*words.shape)
            out += [scores[row, : len(pieces[i][0])] for row, i in enumerate(batch)]
            order += batch
        result: list[np.ndarray] = [np.empty(0)] * len(pieces)
        for i, s in zip(order, out, strict=True):
            result[i] = s
        return result, predicted

    def scores_encoded(self, encoded: Sequence[Encoded]) -> list[np.ndarray]:
        """Tag scores (words x tags) for encoded sentences, in order; long ones are windowed (`pieces`)."""
        cut = [self.pieces(e) for e in encoded]
        flat = self.scores_pieces([p for ps in cut for p, _, _ in ps])
        return stitch(cut, flat, len(self.tags))

    def decode(self, scores: np.ndarray) -> list[str]:
        """One sentence's tags from its scores (Viterbi with the tag bigrams when the model ships them)."""
        best = self.bigrams.decode(scores) if self.bigrams else scores.argmax(-1)
        return [self.tags[t] for t in best]

    def tag_encoded(self, encoded: Sequence[Encoded]) -> list[list[str]]:
        """Tags for encoded sentences, in order."""
        return [self.decode(scores) for scores in self.scores_encoded(encoded)]

    def tag(self, items: Sequence[str | Sequence[str]]) -> list[Tagged]:
        """Words, PFR tags and offsets for each text (or word list), in order."""
        segmented = self.segment_many(items)
        tags = self.tag_encoded([self.encode(words) for words, _ in segmented])
        return [Tagged(words, t, offsets) for (words, offsets), t in zip(segmented, tags, strict=True)]
