"""The PFR (PKU / People's Daily 1998) tagset: descriptions in Chinese and English, and Universal POS tags.

The UPOS mapping is a documented choice, not a fact of the corpus: person/place/organisation names map to
PROPN, morphemes (`Ng`, `Vg`, ...) to their word class, and `w` to PUNCT.
"""

from __future__ import annotations

# tag: (Chinese, English, UPOS)
PFR_TAGS: dict[str, tuple[str, str, str]] = {
    "Ag": ("形语素", "adjective morpheme", "ADJ"),
    "a": ("形容词", "adjective", "ADJ"),
    "ad": ("副形词", "adjective used as adverb", "ADJ"),
    "an": ("名形词", "adjective used as noun", "ADJ"),
    "b": ("区别词", "distinguishing (non-predicate) adjective", "ADJ"),
    "Bg": ("区别语素", "distinguishing morpheme", "ADJ"),
    "c": ("连词", "conjunction", "CCONJ"),
    "d": ("副词", "adverb", "ADV"),
    "Dg": ("副语素", "adverb morpheme", "ADV"),
    "e": ("叹词", "interjection", "INTJ"),
    "f": ("方位词", "locality word", "ADP"),
    "h": ("前接成分", "prefix", "PART"),
    "i": ("成语", "idiom", "X"),
    "j": ("简称略语", "abbreviation", "NOUN"),
    "k": ("后接成分", "suffix", "PART"),
    "l": ("习用语", "idiomatic expression", "X"),
    "m": ("数词", "numeral", "NUM"),
    "Mg": ("数语素", "numeral morpheme", "NUM"),
    "n": ("名词", "noun", "NOUN"),
    "Ng": ("名语素", "noun morpheme", "NOUN"),
    "nr": ("人名", "person name", "PROPN"),
    "ns": ("地名", "place name", "PROPN"),
    "nt": ("机构团体", "organisation name", "PROPN"),
    "nx": ("外文字符", "non-Chinese string", "X"),
    "nz": ("其他专名", "other proper noun", "PROPN"),
    "o": ("拟声词", "onomatopoeia", "ADV"),
    "p": ("介词", "preposition", "ADP"),
    "q": ("量词", "classifier / measure word", "NOUN"),
    "r": ("代词", "pronoun", "PRON"),
    "Rg": ("代语素", "pronoun morpheme", "PRON"),
    "s": ("处所词", "place word", "NOUN"),
    "t": ("时间词", "time word", "NOUN"),
    "Tg": ("时语素", "time morpheme", "NOUN"),
    "u": ("助词", "particle", "PART"),
    "v": ("动词", "verb", "VERB"),
    "vd": ("副动词", "verb used as adverb", "VERB"),
    "Vg": ("动语素", "verb morpheme", "VERB"),
    "vn": ("名动词", "verbal noun", "VERB"),
    "w": ("标点", "punctuation", "PUNCT"),
    "y": ("语气词", "modal particle", "PART"),
    "Yg": ("语气语素", "modal morpheme", "PART"),
    "z": ("状态词", "status word", "ADJ"),
}
# Universal POS tags (universaldependencies.org/u/pos) that PFR_TAGS maps to, with their English names.
UPOS_NAMES: dict[str, str] = {
    "ADJ": "adjective", "ADP": "adposition", "ADV": "adverb", "CCONJ": "coordinating conjunction",
    "INTJ": "interjection", "NOUN": "noun", "NUM": "numeral", "PART": "particle", "PRON": "pronoun",
    "PROPN": "proper noun", "PUNCT": "punctuation", "VERB": "verb", "X": "other",
}
# Two tags occur once each in the source corpus as annotation errors; training maps them to these.
CORPUS_ERRATA = {"na": "n", "vvn": "vn"}


def to_upos(tag: str) -> str:
    return PFR_TAGS[tag][2] if tag in PFR_TAGS else "X"


def describe(tag: str) -> dict[str, str]:
    zh, en, upos = PFR_TAGS.get(tag, ("未知", "unknown", "X"))
    return {"tag": tag, "zh": zh, "en": en, "upos": upos}

# jieba's tag names (its dictionary, jieba.posseg) -> PFR; jieba splits u, lowercases morphemes, adds eng/x/...
JIEBA_TO_PFR = {
    "ag": "Ag", "bg": "Bg", "dg": "Dg", "mg": "Mg", "ng": "Ng", "rg": "Rg", "tg": "Tg", "vg": "Vg", "yg": "Yg",
    "g": "Ng", "uj": "u", "ul": "u", "uz": "u", "ug": "u", "ud": "u", "uv": "u", "eng": "nx", "x": "w",
    "nrt": "nr", "nrfg": "nr", "mq": "m", "df": "d", "qe": "q", "qg": "q", "rr": "r", "rz": "r", "vi": "v",
    "vq": "v", "zg": "z",
}

# The lexicon feature of the tagger: a word's tag in jieba's default dictionary, as one of these ids.
LEXICON_TAGS = ["<none>", *sorted(PFR_TAGS)]


def from_jieba(tag: str) -> str:
    return JIEBA_TO_PFR.get(tag, tag)
