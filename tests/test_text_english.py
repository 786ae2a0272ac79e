from senpos.text.english import clean, tokenize, tokenize_many, truncate
from senpos.text.vocab import PAD, UNK, Vocab


def test_clean_removes_markup_and_entities():
    assert clean("Great film.<br /><br />Loved it &amp; more<BR>") == "Great film. Loved it & more"


def test_tokenize_lowercases_and_splits_punctuation():
    assert tokenize("It's GREAT!<br />Really.") == ["it", "'s", "great", "!", "really", "."]


def test_tokenize_many_matches_tokenize():
    texts = ["A fine film.", "Don't <i>watch</i> it!", ""]
    assert list(tokenize_many(texts)) == [tokenize(t) for t in texts]


def test_truncate_keeps_head_and_tail():
    ids = list(range(10))
    assert truncate(ids, 4, 1) == [0, 7, 8, 9]
    assert truncate(ids, 4, 4) == [0, 1, 2, 3]
    assert truncate(ids, 20, 5) == ids


def test_vocab_build_encode_and_round_trip(tmp_path):
    vocab = Vocab.build([["a", "b", "a"], ["c", "a", "b"]], min_freq=2, max_size=10)
    assert vocab.itos == [PAD, UNK, "a", "b"]
    assert vocab.encode(["a", "zzz", "b"]) == [2, 1, 3]
    vocab.save(tmp_path / "v.json")
    assert Vocab.load(tmp_path / "v.json").itos == vocab.itos


def test_vocab_max_size_is_deterministic():
    vocab = Vocab.build([["b", "a", "c"]], min_freq=1, max_size=4)
    assert vocab.itos == [PAD, UNK, "a", "b"]  # ties broken alphabetically


def test_vocab_rejects_bad_files(tmp_path):
    (tmp_path / "bad.json").write_text('{"itos": ["x"]}')
    try:
        Vocab.load(tmp_path / "bad.json")
    except ValueError as e:
        assert "bad.json" in str(e)
    else:
        raise AssertionError("expected ValueError")
