"""Step 1 of 3: vocabularies (word keys, characters, tags), word2vec, the corpus jieba dictionary.

Writes a `prepared/` directory of numpy arrays and JSON so `train.py` needs only torch and numpy.
"""

from __future__ import annotations

import json
import logging
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from senpos.pos_tags import CORPUS_ERRATA, LEXICON_TAGS
from senpos.text.chinese import Lexicon, char_keys, fold_width, word_key
from senpos.text.vocab import Vocab
from training.pos.data import Sentence, load_sentences

log = logging.getLogger(__name__)


@dataclass
class PrepareConfig:
    train: str
    dev: str
    seed: int = 13
    min_word_freq: int = 2  # rarer words are <unk>, so the tagger learns to lean on characters for new words
    min_char_freq: int = 1
    embed_dim: int = 100
    w2v_epochs: int = 10
    w2v_window: int = 5


def clean_tags(sentences: list[Sentence]) -> list[Sentence]:
    return [Sentence(s.words, tuple(CORPUS_ERRATA.get(t, t) for t in s.tags)) for s in sentences]


def write_jieba_dict(sentences: list[Sentence], path: Path) -> int:
    """A jieba dictionary from the corpus: `word freq tag`, words width-folded like the segmenter's input."""
    freq: Counter[str] = Counter()
    tags: dict[str, Counter[str]] = defaultdict(Counter)
    for s in sentences:
        for w, t in zip(s.words, s.tags, strict=True):
            key = fold_width(w)
            freq[key] += 1
            tags[key][t] += 1
    lines = [f"{w} {c} {tags[w].most_common(1)[0][0]}" for w, c in sorted(freq.items()) if w and " " not in w]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(lines)


def encode(sentences: list[Sentence], words: Vocab, chars: Vocab, tags: list[str], lexicon: Lexicon
           ) -> dict[str, np.ndarray]:
    """Flat arrays: per sentence its words, per word its characters (offsets index the flat arrays)."""
    tag_id = {t: i for i, t in enumerate(tags)}
    word_ids, char_ids, word_char_offsets, sent_offsets, tag_ids, lex_ids = [], [], [0], [0], [], []
    for s in sentences:
        lex_ids += lexicon.encode(s.words)
        for w, t in zip(s.words, s.tags, strict=True):
            word_ids.append(words.encode([word_key(w)])[0])
            char_ids += chars.encode(char_keys(w))
            word_char_offsets.append(len(char_ids))
            tag_ids.append(tag_id[t])
        sent_offsets.append(len(word_ids))
    return {"words": np.asarray(word_ids, np.int32), "chars": np.asarray(char_ids, np.int32),
            "char_offsets": np.asarray(word_char_offsets, np.int64), "sent_offsets": np.asarray(sent_offsets, np.int64),
            "tags": np.asarray(tag_ids, np.int16), "lex": np.asarray(lex_ids, np.int16)}


def train_word2vec(sentences: list[Sentence], vocab: Vocab, cfg: PrepareConfig) -> np.ndarray:
    from gensim.models import Word2Vec

    texts = [[word_key(w) for w in s.words] for s in sentences]
    w2v = Word2Vec(sentences=texts, vector_size=cfg.embed_dim, window=cfg.w2v_window, min_count=1, sg=1,
                   negative=5, epochs=cfg.w2v_epochs, workers=2, seed=cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    matrix = rng.normal(0, float(w2v.wv.vectors.std()), (len(vocab), cfg.embed_dim)).astype(np.float32)
    matrix[0] = 0.0
    for i, tok in enumerate(vocab.itos[2:], start=2):
        if tok in w2v.wv.key_to_index:
            matrix[i] = w2v.wv[tok]
    return matrix


def prepare(cfg: PrepareConfig, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    train, dev = clean_tags(load_sentences(cfg.train)), clean_tags(load_sentences(cfg.dev))
    log.info("%d train sentences, %d dev sentences", len(train), len(dev))
    words = Vocab.build(([word_key(w) for w in s.words] for s in train), cfg.min_word_freq, 10**7)
    chars = Vocab.build((c for s in train for w in s.words for c in [char_keys(w)]), cfg.min_char_freq, 10**7)
    tags = sorted({t for s in train for t in s.tags})
    unknown = sorted({t for s in dev for t in s.tags} - set(tags))
    if unknown:
        raise ValueError(f"{cfg.dev}: tags not seen in training: {unknown}")
    log.info("%d word keys, %d characters, %d tags", len(words), len(chars), len(tags))
    embeddings = train_word2vec(train, words, cfg)
    lexicon = Lexicon(LEXICON_TAGS)
    arrays = {f"{split}_{k}": v for split, ss in (("train", train), ("dev", dev))
              for k, v in encode(ss, words, chars, tags, lexicon).items()}
    np.savez_compressed(out_dir / "data.npz", embeddings=embeddings, **arrays)
    words.save(out_dir / "words.json")
    chars.save(out_dir / "chars.json")
    (out_dir / "tags.json").write_text(json.dumps(tags))
    (out_dir / "lexicon_tags.json").write_text(json.dumps(LEXICON_TAGS))
    n = write_jieba_dict(train, out_dir / "jieba_dict.txt")
    log.info("jieba dictionary: %d words", n)
    (out_dir / "prepare.json").write_text(json.dumps(asdict(cfg), indent=2))


def load_prepared(prepared_dir: Path) -> dict:
    """Sentences as (word ids, [char id arrays], lexicon ids, tag ids), plus embeddings and tag names."""
    with np.load(prepared_dir / "data.npz") as z:
        data = {k: z[k] for k in z.files}
    lexicon_tags = prepared_dir / "lexicon_tags.json"
    out = {"embeddings": data["embeddings"], "tags": json.loads((prepared_dir / "tags.json").read_text()),
           "n_chars": len(Vocab.load(prepared_dir / "chars.json")),
           "lexicon_tags": json.loads(lexicon_tags.read_text()) if lexicon_tags.exists() else []}
    for split in ("train", "dev"):
        words, chars, tags = data[f"{split}_words"], data[f"{split}_chars"], data[f"{split}_tags"]
        lex = data.get(f"{split}_lex", np.zeros(len(words), np.int16))  # directories prepared before the lexicon
        co, so = data[f"{split}_char_offsets"], data[f"{split}_sent_offsets"]
        sents = []
        for i in range(len(so) - 1):
            a, b = so[i], so[i + 1]
            sents.append((words[a:b].astype(np.int64), [chars[co[j] : co[j + 1]].astype(np.int64) for j in range(a, b)],
                          lex[a:b].astype(np.int64), tags[a:b].astype(np.int64)))
        out[split] = sents
    return out
