from senpos.pos_tags import PFR_TAGS, describe, to_upos
from senpos.text.chinese import Segmenter, char_keys, fold_width, word_key, word_offsets


def test_fold_width_is_one_to_one():
    text = "１９９８年ＩＭＦ　ＶＣＤ！"
    folded = fold_width(text)
    assert folded == "1998年IMF VCD!"
    assert len(folded) == len(text)


def test_half_and_full_width_share_a_key():
    assert word_key("１９９８年") == word_key("1998年") == "0000年"
    assert word_key("ＩＭＦ") == word_key("imf")
    assert char_keys("１９９８年") == ["0", "0", "0", "0", "年"]


def test_word_offsets():
    assert word_offsets(["我们", "爱", "北京"]) == [(0, 2), (2, 3), (3, 5)]


def test_custom_dictionary_changes_segmentation(tmp_path):
    """The corpus splits person names into surname + given name; jieba's default dictionary does not."""
    text = "江泽民发表讲话"
    assert Segmenter().words(text)[0] == "江泽民"
    corpus = tmp_path / "dict.txt"
    corpus.write_text("江 100 nr\n泽民 50 nr\n发表 80 v\n讲话 60 n\n", encoding="utf-8")
    assert Segmenter(corpus).words(text) == ["江", "泽民", "发表", "讲话"]


def test_segmenter_follows_corpus_date_conventions(tmp_path):
    corpus = tmp_path / "dict.txt"
    corpus.write_text("年 10 q\n月 10 n\n日 10 n\n我们 10 r\n", encoding="utf-8")
    seg = Segmenter(corpus)
    assert seg.words("１９９８年３月５日") == ["１９９８年", "３月", "５日"]  # original characters come back
    assert seg.words("3年") == ["3", "年"]  # a duration, not a date
    assert seg.words("我们——") == ["我们", "——"]


def test_segmenter_offsets_map_back_and_skip_whitespace(tmp_path):
    seg = Segmenter()
    text = "我爱 北京\u3000天安门。"
    spans = seg.spans(text)
    assert "".join(text[a:b] for a, b in spans) == text.replace(" ", "").replace("\u3000", "")
    assert all(text[a:b].strip() == text[a:b] for a, b in spans)


def test_tag_table_covers_the_corpus_tags():
    corpus_tags = {"n", "v", "w", "u", "d", "vn", "m", "p", "nr", "a", "r", "ns", "c", "q", "t", "f", "j", "b", "l",
                   "ad", "i", "Ng", "s", "nz", "nt", "an", "y", "Vg", "z", "k", "vd", "Tg", "nx", "Ag", "Dg", "o",
                   "h", "e", "Rg", "Bg", "Mg", "Yg"}
    assert corpus_tags <= set(PFR_TAGS)
    assert to_upos("nr") == "PROPN" and to_upos("w") == "PUNCT" and to_upos("???") == "X"
    assert describe("v") == {"tag": "v", "zh": "动词", "en": "verb", "upos": "VERB"}


def test_boundary_features_one_per_character():
    from senpos.text.chinese import boundary_features

    text = "１９９８年 Ab"
    keys, bigrams, places = boundary_features(text, [(0, 5), (6, 8)])
    assert len(keys) == len(bigrams) == len(places) == len(text)
    assert keys[:5] == ["0", "0", "0", "0", "年"] and keys[6:] == ["a", "b"]  # width-folded, digits as 0, lowercase
    assert bigrams[0] == "^0" and bigrams[4] == "0年"
    assert places == [1, 2, 2, 2, 3, 5, 1, 3]  # B M M M E space B E
    assert boundary_features("", []) == ([], [], [])
    assert boundary_features("好", [(0, 1)])[2] == [4]


def test_spans_from_starts_never_keep_whitespace():
    from senpos.text.chinese import spans_from_starts

    text = " 我们 热爱和平 "
    starts = [0, 1, 0, 1, 1, 0, 1, 0, 1]  # a start on whitespace, none after it: both ignored
    assert spans_from_starts(text, starts) == [(1, 3), (4, 6), (6, 8)]
    assert spans_from_starts("", []) == [] and spans_from_starts("  ", [1, 1]) == []
    assert spans_from_starts("我们", [0, 0]) == [(0, 2)]  # the first character always begins a word
