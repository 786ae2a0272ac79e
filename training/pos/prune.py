"""A smaller tagger cut out of a shipped one: the teacher rebuilt in PyTorch from its ONNX files, each BiLSTM
direction's least useful hidden units removed, ready to be fine-tuned against the teacher (train --init-from,
--teacher). A pruned network starts where the teacher is, not from scratch, so distillation has less to learn.

A unit's usefulness: its mean |output| on training windows times the norm of the weights that read it (the next
layer's input weights, or the output layer's, plus its own recurrent column)."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from training.common import make_batches
from training.pos.model import Tagger, TaggerConfig
from training.pos.prepare import load_prepared
from training.pos.train import TrainConfig, collate, windows

log = logging.getLogger(__name__)
ONNX_TO_TORCH_GATES = (0, 2, 3, 1)  # ONNX stacks gates i, o, f, c; PyTorch i, f, g (= c), o


def _gates(a: np.ndarray, hidden: int) -> np.ndarray:
    """Rows of an ONNX gate-stacked matrix or vector, reordered to PyTorch's gate order."""
    return np.concatenate([a[g * hidden: (g + 1) * hidden] for g in ONNX_TO_TORCH_GATES])


def teacher_from_onnx(model_dir: Path) -> Tagger:
    """The float tagger of an exported directory (features.onnx + the bidirectional model.onnx) as a PyTorch Tagger."""
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    model = Tagger(TaggerConfig(**config["model"]))
    hidden = model.cfg.hidden
    params = dict(model.named_parameters())
    for init in onnx.load(str(model_dir / "features.onnx")).graph.initializer:
        params[init.name].data.copy_(torch.from_numpy(numpy_helper.to_array(init).astype(np.float32)))
    inits = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(model_dir / "model.onnx")).graph.initializer}
    for k, layer in enumerate(model.layers):
        for d, lstm in enumerate((layer.fwd, layer.bwd)):
            w, r, b = inits[f"layer{k}/W"][d], inits[f"layer{k}/R"][d], inits[f"layer{k}/B"][d]
            lstm.weight_ih_l0.data.copy_(torch.from_numpy(_gates(w, hidden)))
            lstm.weight_hh_l0.data.copy_(torch.from_numpy(_gates(r, hidden)))
            lstm.bias_ih_l0.data.copy_(torch.from_numpy(_gates(b[: 4 * hidden], hidden)))
            lstm.bias_hh_l0.data.copy_(torch.from_numpy(_gates(b[4 * hidden:], hidden)))
    model.out.weight.data.copy_(torch.from_numpy(inits["out_weight"].T.copy()))
    model.out.bias.data.copy_(torch.from_numpy(inits["out_bias"].copy()))
    return model.eval()


@torch.no_grad()
def mean_abs_outputs(model: Tagger, examples: list, batch_size: int = 64) -> list[torch.Tensor]:
    """Per layer, mean |output| of each of its 2 * hidden units (forward units, then backward) over real words."""
    sums = [torch.zeros(2 * model.cfg.hidden) for _ in model.layers]
    count = 0
    mask = torch.zeros(0, dtype=torch.bool)

    def record(k: int, out: tuple[torch.Tensor, torch.Tensor]) -> None:
        sums[k] += torch.cat(out, -1)[mask].abs().sum(0)

    hooks = [layer.register_forward_hook(lambda _m, _i, out, k=k: record(k, out))
             for k, layer in enumerate(model.layers)]
    try:
        for batch in make_batches([len(e[0]) for e in examples], batch_size, rng=None):
            words, chars, lex, lengths, _ = collate([examples[i] for i in batch], torch.device("cpu"))
            mask = torch.arange(words.size(1)).unsqueeze(0) < lengths.unsqueeze(1)
            model(words, chars, lex, lengths)
            count += int(mask.sum())
    finally:
        for h in hooks:
            h.remove()
    return [s / count for s in sums]


def prune(model: Tagger, hidden: int, activity: list[torch.Tensor]) -> Tagger:
    """A copy of `model` keeping `hidden` units per direction and layer, the most useful ones."""
    old = model.cfg.hidden
    if not 0 < hidden <= old:
        raise ValueError(f"hidden must be between 1 and the teacher's {old}, not {hidden}")
    small = Tagger(TaggerConfig(**{**asdict(model.cfg), "hidden": hidden}))
    small.load_state_dict({k: v for k, v in model.state_dict().items() if "layers." not in k and "out." not in k},
                          strict=False)
    kept = []  # per layer: indices into its 2 * old outputs
    for k, layer in enumerate(model.layers):
        reader = model.layers[k + 1] if k + 1 < len(model.layers) else None
        read = (torch.cat([reader.fwd.weight_ih_l0, reader.bwd.weight_ih_l0]) if reader else model.out.weight)
        keep = []
        for d, lstm in enumerate((layer.fwd, layer.bwd)):
            units = slice(d * old, (d + 1) * old)
            score = activity[k][units] * (read[:, units].norm(dim=0) + lstm.weight_hh_l0.norm(dim=0))
            keep.append(torch.sort(torch.topk(score, hidden).indices).values + d * old)
        kept.append(torch.cat(keep))
    for k, (layer, new) in enumerate(zip(model.layers, small.layers, strict=True)):
        inputs = kept[k - 1] if k else torch.arange(layer.fwd.input_size)
        for d, (lstm, target) in enumerate(((layer.fwd, new.fwd), (layer.bwd, new.bwd))):
            units = kept[k][d * hidden: (d + 1) * hidden] - d * old
            rows = torch.cat([units + g * old for g in range(4)])
            target.weight_ih_l0.data.copy_(lstm.weight_ih_l0.data[rows][:, inputs])
            target.weight_hh_l0.data.copy_(lstm.weight_hh_l0.data[rows][:, units])
            target.bias_ih_l0.data.copy_(lstm.bias_ih_l0.data[rows])
            target.bias_hh_l0.data.copy_(lstm.bias_hh_l0.data[rows])
    small.out.weight.data.copy_(model.out.weight.data[:, kept[-1]])
    small.out.bias.data.copy_(model.out.bias.data)
    return small.eval()


def prune_teacher(model_dir: Path, prepared_dir: Path, hidden: int, out_dir: Path, sentences: int = 5000) -> dict:
    """Prune the tagger in `model_dir` to `hidden` units per direction; write out_dir/checkpoint.pt (the format
    `train` writes, so `train --init-from` and `export --run` read it)."""
    data = load_prepared(prepared_dir)
    teacher = teacher_from_onnx(model_dir)
    max_words = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))["max_words"]
    examples = windows(data["train"][:sentences], max_words)
    student = prune(teacher, hidden, mean_abs_outputs(teacher, examples))
    out_dir.mkdir(parents=True, exist_ok=True)
    train_config = {**asdict(TrainConfig()), "hidden": hidden, "layers": teacher.cfg.layers}
    torch.save({"model_config": asdict(student.cfg), "train_config": train_config, "tags": data["tags"],
                "lexicon_tags": data["lexicon_tags"], "state_dict": student.state_dict()}, out_dir / "checkpoint.pt")
    return {"teacher": str(model_dir), "hidden": hidden, "from_hidden": teacher.cfg.hidden, "sentences": sentences}
