"""The served POS directory (training/pos/optimize.py): the word-feature table, the int8 tagger and corrector keep
every score independent of the batch, bit for bit, and the anchors are what makes the int8 tagger so."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from senpos.pos import PosTagger

MODEL = Path(__file__).resolve().parents[1] / "models" / "pos"
CROWD = ["中国经济发展迅速，人民生活水平不断提高。" * 6, "他在北京工作。", "龘靐齉爩是四个生僻字。", "好"]


@pytest.fixture(scope="module")
def tagger() -> PosTagger:
    return PosTagger(MODEL, threads=1)


def scores_alone_and_in_crowd(tagger: PosTagger, item: str) -> tuple[np.ndarray, np.ndarray]:
    encoded = [tagger.encode(tagger.segment(t)[0]) for t in [item, *CROWD]]
    return tagger.scores_encoded(encoded[:1])[0], tagger.scores_encoded(encoded)[0]


def test_shipped_tagger_is_int8_on_cpu_and_batch_invariant_bit_for_bit(tagger):
    assert tagger.tagger_file.name == "model.int8.onnx"
    for item in ("江泽民发表新年讲话。", "饕餮和魑魅魍魉出现在纽伯瑞村。"):  # the second has unknown words
        alone, crowd = scores_alone_and_in_crowd(tagger, item)
        assert np.array_equal(alone, crowd)


def test_word_feature_table_matches_features_computed_alone(tagger):
    ids = np.array([tagger.words.stoi[w] for w in ("北京", "工作", "发展")])
    for i in ids:
        _, chars, lex = tagger.encode_word(tagger.words.itos[i])
        alone = tagger.features.compute(np.array([i]), chars[None], np.array([lex]))[0]
        assert np.array_equal(alone, tagger.features.table[i])


def test_int8_and_float_taggers_agree(tagger):
    float_tagger = PosTagger(MODEL, threads=1, precision="float")
    assert float_tagger.tagger_file.name == "model.onnx"
    texts = ["国家主席江泽民发表１９９８年新年讲话。", "中国经济发展迅速，人民生活水平不断提高。", "他在北京工作。"]
    int8, f32 = tagger.tag(texts), float_tagger.tag(texts)
    same = sum(a == b for x, y in zip(int8, f32, strict=True) for a, b in zip(x.tags, y.tags, strict=True))
    assert same >= 0.95 * sum(len(x.tags) for x in int8)


def test_shipped_corrector_is_batch_invariant_bit_for_bit(tagger):
    corrector = tagger.corrector
    texts = ["国家主席江泽民发表１９９８年新年讲话。", *CROWD]
    encoded = [corrector.encode(t, tagger.segmenter.spans(t)) for t in texts]
    alone = corrector._run(*corrector.pad(encoded[:1]))[0]
    crowd = corrector._run(*corrector.pad(encoded))[0, : len(alone)]
    assert np.array_equal(alone, crowd)


def test_without_anchors_int8_scores_would_depend_on_the_batch(tmp_path):
    """The reason for the anchors: plain dynamic quantisation of the same tagger changes a sentence's scores with
    its neighbours; the anchored one (shipped) does not (test above)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    plain = tmp_path / "plain.onnx"
    quantize_dynamic(MODEL / "model.onnx", plain, op_types_to_quantize=["LSTM"], weight_type=QuantType.QInt8)
    tagger = PosTagger(MODEL, threads=1)
    tagger.session = ort.InferenceSession(str(plain), providers=["CPUExecutionProvider"])
    alone, crowd = scores_alone_and_in_crowd(tagger, "江泽民发表新年讲话。")
    assert not np.array_equal(alone, crowd)


def test_a_directory_exported_before_the_served_form_says_how_to_convert_it(tmp_path):
    from senpos.runtime import ModelLoadError

    old = tmp_path / "pos"
    old.mkdir()
    (old / "model.onnx").write_bytes((MODEL / "model.onnx").read_bytes())
    with pytest.raises(ModelLoadError, match="training.pos optimize"):
        PosTagger(old)
    with pytest.raises(ValueError, match="precision"):
        PosTagger(MODEL, precision="fp16")
