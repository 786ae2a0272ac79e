"""POS tagger predictor: text -> jieba words (corpus dictionary), corrected by a character model when the model
directory ships one -> ONNX BiLSTM tags; onnxruntime only."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from senpos.pos_tags import to_upos
from senpos.runtime import ModelLoadError, load_vocabs, measure_cost, open_model, plan_batches, require_files
from senpos.text.chinese import (
    MAX_WORD_CHARS,
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
FILES = ("model.onnx", "words.json", "chars.json", "tags.json", "lexicon_tags.json", "jieba_dict.txt", "config.json")
WORD_CACHE = 200_000  # words whose encoding PosTagger remembers (a few tens of MB at most)
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

    def correct(self, texts: Sequence[str], jieba_spans: Sequence[list[tuple[int, int]]]
                ) -> list[list[tuple[int, int]]]:
        """Word spans of each text, from jieba's spans and the model; whitespace is never part of a word."""
        encoded = []
        for text, spans in zip(texts, jieba_spans, strict=True):
            keys, bigrams, places = boundary_features(text, spans)
            encoded.append((self.chars.encode(keys), self.bigrams.encode(bigrams), places))
        pieces = [(s, *win) for s, (c, *_) in enumerate(encoded) if c
                  for win in windows(len(c), self.max_chars, self.context)]
        starts = [np.zeros(len(text), dtype=bool) for text in texts]
        for batch in plan_batches([p[2] - p[1] for p in pieces], self.max_batch, self.cost):
            lengths = np.array([pieces[i][2] - pieces[i][1] for i in batch], dtype=np.int64)
            arrays = np.zeros((3, len(batch), int(lengths.max())), dtype=np.int64)
            for row, i in enumerate(batch):
                s, start, end, _, _ = pieces[i]
                for k in range(3):
                    arrays[k, row, : end - start] = encoded[s][k][start:end]
            scores = self._run(arrays[0], arrays[1], arrays[2], lengths)
            for row, i in enumerate(batch):
                s, start, _, keep_from, keep_to = pieces[i]
                starts[s][keep_from:keep_to] = scores[row, keep_from - start : keep_to - start] > 0
        return [spans_from_starts(text, st) for text, st in zip(texts, starts, strict=True)]


class PosTagger:
    """Load `model_dir` and tag raw texts (segmented here) or pre-segmented word lists (kept as given)."""

    def __init__(self, model_dir: str | Path, threads: int = 0, provider: str | None = None, max_batch: int = 64,
                 word_cache: int = WORD_CACHE):
        self.model_dir = Path(model_dir)
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
        self.session = open_model(self.model_dir / "model.onnx", vocab_digest(self.words, self.chars),
                                  "words.json/chars.json", threads, provider)
        meta = self.session.get_modelmeta().custom_metadata_map
        if meta.get("tags") != json.dumps(self.tags):
            raise ModelLoadError(f"{self.model_dir / 'tags.json'}: tags do not match model.onnx")
        if meta.get("lexicon_tags", "[]") != json.dumps(lexicon_tags):
            raise ModelLoadError(f"{self.model_dir / 'lexicon_tags.json'}: lexicon tags do not match model.onnx")
        self.inputs = [i.name for i in self.session.get_inputs()]
        bigrams = self.model_dir / "tag_bigrams.json"  # optional: constrained decoding, when dev said it pays
        try:
            self.bigrams = TagBigrams.load(bigrams) if bigrams.exists() else None
        except (ValueError, KeyError) as e:
            raise ModelLoadError(f"{bigrams}: invalid ({e})") from e
        if self.bigrams is not None and self.bigrams.transitions.shape != (len(self.tags), len(self.tags)):
            raise ModelLoadError(f"{bigrams}: {self.bigrams.transitions.shape} transitions for {len(self.tags)} tags")
        self.lexicon = Lexicon(lexicon_tags) if "lex" in self.inputs else None
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
        self.provider = self.session.get_providers()[0]
        self.cost = measure_cost(lambda n, length: self._dummy_run(n, length, 2), max_batch)
        self.width_cost = self._measure_width_cost()

    def _dummy_run(self, n: int, length: int, width: int) -> np.ndarray:
        return self._run(np.ones((n, length), dtype=np.int64), np.ones((n, length, width), dtype=np.int64),
                         np.zeros((n, length), dtype=np.int64), np.full(n, length, dtype=np.int64))

    def _measure_width_cost(self) -> float:
        """Extra cost per character column past the 2 the cost model was measured with (relative): a batch is
        padded to its longest word, and a 32-character word makes every row of its batch ~2x dearer."""

        def best(width: int) -> float:
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                self._dummy_run(16, 64, width)
                times.append(time.perf_counter() - t0)
            return min(times)

        return max((best(MAX_WORD_CHARS) / best(2) - 1) / (MAX_WORD_CHARS - 2), 0.0)

    def steps(self, piece: Piece) -> float:
        """A piece's model cost in the cost model's steps: its words, dearer for its longest word."""
        return len(piece[0]) * (1 + self.width_cost * max(piece[1].shape[1] - 2, 0))

    def _run(self, words: np.ndarray, chars: np.ndarray, lex: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        feeds = {"words": words, "chars": chars, "lex": lex, "lengths": lengths}
        return self.session.run(None, {k: feeds[k] for k in self.inputs})[0]

    def segment_texts(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        """Word spans of raw texts: jieba's, corrected by the character model when there is one."""
        spans = [self.segmenter.spans(t) for t in texts]
        return self.corrector.correct(texts, spans) if self.corrector and texts else spans

    def segment_many(self, items: Sequence[str | Sequence[str]]) -> list[tuple[list[str], list[tuple[int, int]]]]:
        """Raw texts are segmented (together); word lists are kept exactly, offsets into their concatenation."""
        raw = [i for i, item in enumerate(items) if isinstance(item, str)]
        spans = dict(zip(raw, self.segment_texts([items[i] for i in raw]), strict=True))
        out = []
        for i, item in enumerate(items):
            if i in spans:
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
        (piece, keep_from, keep_to), where the piece's rows keep_from:keep_to are the words it decides."""
        w, chars, lex = encoded
        out = []
        for start, end, keep_from, keep_to in windows(len(w), self.max_words, self.context):
            width = max((len(c) for c in chars[start:end]), default=1)
            grid = np.zeros((end - start, width), dtype=np.int64)
            for j, c in enumerate(chars[start:end]):
                grid[j, : len(c)] = c
            out.append(((w[start:end], grid, lex[start:end]), keep_from - start, keep_to - start))
        return out

    def scores_pieces(self, pieces: Sequence[Piece]) -> list[np.ndarray]:
        """Tag scores (words x tags) for each piece, in order: the model call. Pieces are batched with others
        of similar length (runtime.plan_batches), padded only to the longest of their batch."""
        return self.scores_pieces_costed(pieces)[0]

    def scores_pieces_costed(self, pieces: Sequence[Piece]) -> tuple[list[np.ndarray], float]:
        """`scores_pieces`, and the seconds the cost model predicted for the calls it made."""
        out, predicted = [], 0.0
        order: list[int] = []
        for batch in plan_batches([max(len(p[0]), 1) for p in pieces], self.max_batch, self.cost):
            lengths = np.array([max(len(pieces[i][0]), 1) for i in batch], dtype=np.int64)
            width = max(pieces[i][1].shape[1] for i in batch)
            words = np.zeros((len(batch), int(lengths.max())), dtype=np.int64)
            lex = np.zeros_like(words)
            chars = np.zeros((len(batch), int(lengths.max()), width), dtype=np.int64)
            for row, i in enumerate(batch):
                w, c, x = pieces[i]
                words[row, : len(w)], lex[row, : len(w)] = w, x
                chars[row, : len(w), : c.shape[1]] = c
            scores = self._run(words, chars, lex, lengths)
            predicted += self.cost(len(batch), int(lengths.max())) * (1 + self.width_cost * max(width - 2, 0))
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
