"""An exported tagger directory -> the one that serves: word features split out, LSTMs in int8, corrector in int8.

1. `split_features`: model.onnx (word ids -> tag scores) becomes features.onnx (word ids -> each word's input to
   the LSTMs) and model.onnx (those features -> tag scores). senpos.pos.WordFeatures computes every vocabulary
   word's features once at load, so the character CNN runs only for unknown words.
2. `quantize_tagger`: model.int8.onnx, the LSTMs in int8 (onnxruntime's DynamicQuantizeLSTM). Dynamic
   quantisation scales each input matrix by its own largest value, and that matrix holds every sentence of a
   batch, so on its own a sentence's scores would change with its neighbours (by up to 0.46 on dev). Each LSTM is
   therefore rewritten first so that every row of every matrix it quantises has the same range: its input is
   clipped to [-bound, bound] and gets two constant features, +bound and -bound (zero weights), and it gets two
   extra hidden units whose gates are saturated by their biases and whose cells start at +-CELL, so they are +1
   and -1 at every step (the largest values any LSTM output can take) and feed nothing. The scales are then the
   same in every batch, the int8 products exact, and the extra units are sliced off.
3. `quantize_corrector`: segmenter.onnx's convolutions in int8 with static scales, set on calibration texts.

    python -m training.pos optimize runs/pos/export --out models/pos   # an older single-graph export
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

log = logging.getLogger(__name__)
SATURATE = 40.0  # gate pre-activation that makes a sigmoid exactly 0 or 1 in float32
CELL = 20.0  # tanh(20) is 1 in float32
MARGIN = 1.25  # the clip bound is this times the largest feature of any vocabulary word
GATES = 4  # ONNX LSTM gate blocks: input, output, forget, cell
PARITY_TOL = 1e-4
LSTM_NAME = re.compile(r"/layers\.(\d+)/(fwd|bwd)/")  # training/pos/model.py's MaskedBiLSTMLayer, as exported
IDS = ("words", "chars", "lex")


def _rename(graph: onnx.GraphProto, old: str, new: str) -> None:
    for node in graph.node:
        node.input[:] = [new if i == old else i for i in node.input]
        node.output[:] = [new if o == old else o for o in node.output]
    for vi in (*graph.input, *graph.output, *graph.value_info):
        if vi.name == old:
            vi.name = new


def _extract(model: onnx.ModelProto, inputs: list[str], outputs: list[str]) -> onnx.ModelProto:
    part = onnx.utils.Extractor(model).extract_model(inputs, outputs)
    part.ir_version, part.producer_name = model.ir_version, model.producer_name
    del part.opset_import[:]
    part.opset_import.extend(model.opset_import)
    part.metadata_props.extend(model.metadata_props)
    return part


def split_features(model: onnx.ModelProto) -> tuple[onnx.ModelProto, onnx.ModelProto]:
    """(features model: words, chars[, lex] -> features; tagger: features, lengths -> scores) from one graph. The
    boundary is what the first LSTM reads (through its Transpose to time-major). The tagger half may read the id
    inputs only through their shape's batch and time dimensions; it reads those from the features instead."""
    graph = model.graph
    producers = {o: n for n in graph.node for o in n.output}
    first = next(n for n in graph.node if n.op_type == "LSTM")
    transpose = producers.get(first.input[0])
    if transpose is None or transpose.op_type != "Transpose":
        raise ValueError("model.onnx: the first LSTM does not read a transposed feature tensor")
    boundary = transpose.input[0]
    needed, stack = set(), ["scores"]
    while stack:  # the tagger half: everything 'scores' needs, stopping at the boundary
        name = stack.pop()
        node = producers.get(name)
        if name == boundary or node is None or id(node) in needed:
            continue
        needed.add(id(node))
        for i in node.input:
            if i in IDS:
                if node.op_type != "Shape":
                    raise ValueError(f"model.onnx: {node.name} reads {i} after the features")
                node.input[:] = [boundary]
            elif i:
                stack.append(i)
    model = onnx.shape_inference.infer_shapes(model)
    present = [i.name for i in model.graph.input if i.name in IDS]
    features = _extract(model, present, [boundary])
    _rename(features.graph, boundary, "features")
    tagger = _extract(model, [boundary, "lengths"], ["scores"])
    _rename(tagger.graph, boundary, "features")
    return features, tagger


def _const(name: str, value: np.ndarray) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(value, name))


def _anchored(w: np.ndarray, r: np.ndarray, b: np.ndarray, hidden: int) -> tuple[np.ndarray, ...]:
    """LSTM weights (directions first, ONNX layout) with two more input columns and two more hidden units, all
    zero, except the new units' biases: input gate shut, output and forget gates open (their cells keep their
    start values, +-CELL, so their outputs stay +1 and -1)."""
    size = hidden + 2

    def widen(a: np.ndarray, cols: int) -> np.ndarray:  # (dirs, 4 * hidden, k) -> (dirs, 4 * size, cols)
        out = np.zeros((a.shape[0], GATES * size, cols), dtype=np.float32)
        for g in range(GATES):
            out[:, g * size: g * size + hidden, : a.shape[2]] = a[:, g * hidden: (g + 1) * hidden]
        return out

    dirs = b.shape[0]
    b2 = np.concatenate([widen(b[:, : GATES * hidden, None], 1), widen(b[:, GATES * hidden:, None], 1)], 1)[..., 0]
    for unit in (hidden, hidden + 1):
        b2[:, 0 * size + unit], b2[:, 1 * size + unit], b2[:, 2 * size + unit] = -SATURATE, SATURATE, SATURATE
    return widen(w, w.shape[2] + 2), widen(r, size), b2.reshape(dirs, 2 * GATES * size)


def bidirectional_tagger(tagger: onnx.ModelProto, bound: float | None = None) -> onnx.ModelProto:
    """The tagger rebuilt from its weights with one bidirectional ONNX LSTM per layer, reading each sentence's
    length (`sequence_lens`: the backward direction starts at the sentence's own end, as in training; no
    reversing and re-gathering around it). With `bound`, anchored for int8 as the module docstring says (the
    first layer's input clipped to `bound`, later layers' to 1)."""
    graph = tagger.graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    named = {m.groups(): n for n in graph.node if n.op_type == "LSTM" and (m := LSTM_NAME.search(n.name))}
    layers = len(named) // 2
    if not named or set(named) != {(str(i), d) for i in range(layers) for d in ("fwd", "bwd")}:
        raise ValueError(f"model.onnx: expected a forward and a backward LSTM per layer, found {sorted(named)}")
    lstms = [named[(str(i), d)] for i in range(layers) for d in ("fwd", "bwd")]
    hidden = int(helper.get_attribute_value(next(a for a in lstms[0].attribute if a.name == "hidden_size")))
    matmul = next(n for n in graph.node if n.op_type == "MatMul")
    add = next(n for n in graph.node if n.op_type == "Add" and matmul.output[0] in n.input)
    w_out, b_out = inits[matmul.input[1]], inits[next(i for i in add.input if i != matmul.output[0])]
    size = hidden + 2 if bound is not None else hidden
    nodes = [_const("zero", np.array([0], dtype=np.int64)), _const("one", np.array([1], dtype=np.int64)),
             _const("two", np.array([2], dtype=np.int64)), _const("size", np.array([size], dtype=np.int64)),
             _const("merge", np.array([0, 0, -1], dtype=np.int64)),
             helper.make_node("Transpose", ["features"], ["x0"], perm=[1, 0, 2]),
             helper.make_node("Cast", ["lengths"], ["sequence_lens"], to=onnx.TensorProto.INT32),
             helper.make_node("Shape", ["features"], ["shape"]),
             helper.make_node("Slice", ["shape", "zero", "one"], ["batch"]),
             helper.make_node("Concat", ["two", "batch", "size"], ["state_shape"], axis=0),
             helper.make_node("ConstantOfShape", ["state_shape"], ["h0"],
                              value=numpy_helper.from_array(np.zeros(1, dtype=np.float32)))]
    weights, c0 = [], "h0"
    if bound is not None:
        cell = np.zeros((1, 1, size), dtype=np.float32)
        cell[0, 0, hidden], cell[0, 0, hidden + 1] = CELL, -CELL
        nodes += [_const("cell_start", cell), helper.make_node("Add", ["h0", "cell_start"], ["c0"]),
                  _const("hidden", np.array([hidden], dtype=np.int64)), _const("axis3", np.array([3], dtype=np.int64)),
                  helper.make_node("Slice", ["shape", "one", "two"], ["time"]),
                  helper.make_node("Concat", ["time", "batch", "one"], ["anchor_shape"], axis=0)]
        c0 = "c0"
    x = "x0"
    for layer, (f, b) in enumerate(zip(lstms[::2], lstms[1::2], strict=True)):
        w, r, bias = (np.concatenate([inits[f.input[k]], inits[b.input[k]]]) for k in (1, 2, 3))
        p = f"layer{layer}"
        if bound is not None:
            w, r, bias = _anchored(w, r, bias, hidden)
            limit = bound if layer == 0 else 1.0
            nodes += [_const(f"{p}/anchor_values", np.array([[[limit, -limit]]], dtype=np.float32)),
                      _const(f"{p}/low", np.array(-limit, dtype=np.float32)),
                      _const(f"{p}/high", np.array(limit, dtype=np.float32)),
                      helper.make_node("Expand", [f"{p}/anchor_values", "anchor_shape"], [f"{p}/anchors"]),
                      helper.make_node("Clip", [x, f"{p}/low", f"{p}/high"], [f"{p}/clipped"]),
                      helper.make_node("Concat", [f"{p}/clipped", f"{p}/anchors"], [f"{p}/x"], axis=2)]
            x = f"{p}/x"
        weights += [numpy_helper.from_array(a.astype(np.float32), f"{p}/{k}") for a, k in ((w, "W"), (r, "R"),
                                                                                          (bias, "B"))]
        nodes.append(helper.make_node("LSTM", [x, f"{p}/W", f"{p}/R", f"{p}/B", "sequence_lens", "h0", c0],
                                      [f"{p}/y"], name=f"{p}/lstm", hidden_size=size, direction="bidirectional"))
        y = f"{p}/y"
        if bound is not None:  # (time, 2, batch, size) -> the real units
            nodes.append(helper.make_node("Slice", [y, "zero", "hidden", "axis3"], [f"{p}/y_real"]))
            y = f"{p}/y_real"
        nodes += [helper.make_node("Transpose", [y], [f"{p}/y_t"], perm=[0, 2, 1, 3]),
                  helper.make_node("Reshape", [f"{p}/y_t", "merge"], [f"{p}/out"])]  # (time, batch, 2 * hidden)
        x = f"{p}/out"
    nodes += [helper.make_node("Transpose", [x], ["batch_major"], perm=[1, 0, 2]),
              helper.make_node("MatMul", ["batch_major", "out_weight"], ["logits"]),
              helper.make_node("Add", ["logits", "out_bias"], ["scores"])]
    weights += [numpy_helper.from_array(w_out, "out_weight"), numpy_helper.from_array(b_out, "out_bias")]
    dims, n_features = ["batch", "time"], inits[lstms[0].input[1]].shape[2]
    built = helper.make_graph(
        nodes, "tagger", [helper.make_tensor_value_info("features", onnx.TensorProto.FLOAT, [*dims, n_features]),
                          helper.make_tensor_value_info("lengths", onnx.TensorProto.INT64, ["batch"])],
        [helper.make_tensor_value_info("scores", onnx.TensorProto.FLOAT, [*dims, w_out.shape[1]])], weights)
    model = helper.make_model(built, opset_imports=list(tagger.opset_import))
    model.ir_version = tagger.ir_version
    model.metadata_props.extend(tagger.metadata_props)
    onnx.checker.check_model(model)
    return model


def check_parity(reference: onnx.ModelProto, rebuilt: onnx.ModelProto, dim: int, seed: int = 0) -> float:
    """Largest difference between two float taggers' scores on real positions of random batches."""
    import onnxruntime as ort

    sessions = [ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
                for m in (reference, rebuilt)]
    rng, worst = np.random.default_rng(seed), 0.0
    for batch, longest in ((1, 1), (1, 150), (5, 40), (32, 150)):
        lengths = rng.integers(1, longest + 1, batch).astype(np.int64)
        features = rng.normal(0, 1, (batch, int(lengths.max()), dim)).astype(np.float32)
        a, b = (s.run(None, {"features": features, "lengths": lengths})[0] for s in sessions)
        real = np.arange(features.shape[1])[None, :] < lengths[:, None]
        worst = max(worst, float(np.abs(a - b)[real].max()))
    return worst


def quantize_tagger(tagger: onnx.ModelProto, bound: float, out: Path) -> dict:
    """Write `out`: the tagger, anchored (first layer clipped to `bound`), with its LSTMs in int8."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        anchored = Path(tmp) / "anchored.onnx"
        onnx.save(bidirectional_tagger(tagger, bound), anchored)
        quantize_dynamic(anchored, out, op_types_to_quantize=["LSTM"], weight_type=QuantType.QInt8)
    return {"file": out.name, "lstm": "int8 (onnxruntime DynamicQuantizeLSTM), anchored ranges",
            "first_layer_bound": bound}


def _record(model_dir: Path, change: Callable[[dict], None]) -> None:
    """Apply `change` to the directory's config.json (where each step says what it did)."""
    path = model_dir / "config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    change(config)
    path.write_text(json.dumps(config, indent=2, ensure_ascii=False), encoding="utf-8")


def optimize_tagger(model_dir: Path) -> dict:
    """Split model.onnx in `model_dir` (features.onnx + model.onnx) and add model.int8.onnx; in place."""
    from senpos.pos import WordFeatures, vocab_digest
    from senpos.runtime import load_vocabs, open_model
    from senpos.text.chinese import Lexicon

    features, extracted = split_features(onnx.load(model_dir / "model.onnx"))
    tagger = bidirectional_tagger(extracted)
    dim = tagger.graph.input[0].type.tensor_type.shape.dim[-1].dim_value
    parity = check_parity(extracted, tagger, dim)
    if parity > PARITY_TOL:
        raise AssertionError(f"the rebuilt tagger differs from the exported one by {parity:.2e} (> {PARITY_TOL})")
    onnx.save(features, model_dir / "features.onnx")
    onnx.save(tagger, model_dir / "model.onnx")
    words, chars = load_vocabs(model_dir / "words.json", model_dir / "chars.json")
    session = open_model(model_dir / "features.onnx", vocab_digest(words, chars), "words.json/chars.json", 1, "cpu")
    lexicon_tags = json.loads((model_dir / "lexicon_tags.json").read_text(encoding="utf-8"))
    lexicon = Lexicon(lexicon_tags) if "lex" in [i.name for i in session.get_inputs()] else None
    table = WordFeatures(session, words, chars, lexicon).table
    bound = float(np.float32(np.abs(table).max() * MARGIN))
    info = {**quantize_tagger(extracted, bound, model_dir / "model.int8.onnx"), "rebuilt_parity_max_abs_diff": parity}
    _record(model_dir, lambda config: config.update(onnx={
        **config.get("onnx", {}), "features": "features.onnx: words, chars, lex -> features",
        "tagger": "model.onnx: features (batch, time, dim), lengths -> scores", "int8": info}))
    log.info("%s: features split out, int8 tagger %s", model_dir, info)
    return info


def quantize_corrector(model_dir: Path, texts: Sequence[str], batch: int = 64) -> dict:
    """segmenter.onnx in `model_dir`: convolutions and output layer in int8 with static scales, set on `texts`
    (fixed scales keep a text's words independent of its batch). In place."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from senpos.pos import PosTagger

    tagger = PosTagger(model_dir, threads=1)
    corrector = tagger.corrector
    if corrector is None:
        raise ValueError(f"{model_dir}: no segmentation corrector to quantise")
    encoded = [corrector.encode(t, tagger.segmenter.spans(t)) for t in texts if t]
    feeds = [dict(zip(("chars", "bigrams", "places", "lengths"), corrector.pad(encoded[i: i + batch]), strict=True))
             for i in range(0, len(encoded), batch)]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(feeds)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    path = model_dir / "segmenter.onnx"
    with tempfile.TemporaryDirectory() as tmp:
        float_copy = Path(tmp) / path.name
        shutil.copy(path, float_copy)
        quantize_static(float_copy, path, Reader(), quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=["Conv", "MatMul"],
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    info = {"convolutions": "int8, static scales (onnxruntime QDQ, per-channel weights)",
            "calibration_texts": len(encoded)}
    _record(model_dir, lambda config: config["segmentation"]["corrector"].update(int8=info))
    return info


def optimize_dir(model_dir: Path, out: Path, calibration_texts: Sequence[str]) -> dict:
    """`out` = `model_dir` (an export whose model.onnx is one graph), optimised: steps 1-3 of the docstring."""
    if out.resolve() != model_dir.resolve():
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(model_dir, out)
    info = {"tagger": optimize_tagger(out)}
    if (out / "segmenter.onnx").exists():
        info["corrector"] = quantize_corrector(out, calibration_texts)
    return info
