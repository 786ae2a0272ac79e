"""The BiLSTM sentiment classifier.

Padding never leaks into a review's score: the BiLSTM layers (training/layers.py) never let padding
reach a real token's state, and pooling masks padding out.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from training.layers import MaskedBiLSTMLayer, gather_time, reverse_index


@dataclass
class ModelConfig:
    vocab_size: int
    embed_dim: int = 100
    hidden: int = 128
    layers: int = 1
    dropout: float = 0.5
    pooling: str = "concat"  # "concat": final states + masked max + masked mean; "last": final states only


class SentimentBiLSTM(nn.Module):
    """ids (batch, time) int64, lengths (batch,) int64 -> P(positive) (batch,)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.embedding = nn.Embedding(cfg.vocab_size, cfg.embed_dim, padding_idx=0)
        sizes = [cfg.embed_dim] + [2 * cfg.hidden] * (cfg.layers - 1)
        self.layers = nn.ModuleList(MaskedBiLSTMLayer(s, cfg.hidden) for s in sizes)
        self.dropout = nn.Dropout(cfg.dropout)
        features = 2 * cfg.hidden * (3 if cfg.pooling == "concat" else 1)
        self.head = nn.Linear(features, 1)

    def logits(self, ids: torch.Tensor, lengths: torch.Tensor, embedded: torch.Tensor | None = None) -> torch.Tensor:
        """`embedded` replaces `self.embedding(ids)` (adversarial training perturbs it)."""
        max_len = ids.size(1)
        rev = reverse_index(lengths, max_len)
        x = self.dropout(self.embedding(ids) if embedded is None else embedded)
        for i, layer in enumerate(self.layers):
            out_f, out_b = layer(x, rev)
            x = torch.cat([out_f, out_b], dim=-1)
            if i < len(self.layers) - 1:
                x = self.dropout(x)
        last = gather_time(out_f, (lengths - 1).unsqueeze(1)).squeeze(1)  # forward state at the last token
        first = out_b[:, 0]  # backward state after reading the whole review
        feats = [last, first]
        if self.cfg.pooling == "concat":
            mask = (torch.arange(max_len, device=ids.device).unsqueeze(0) < lengths.unsqueeze(1)).unsqueeze(-1)
            feats.append(x.masked_fill(~mask, -1e4).max(dim=1).values)
            feats.append((x * mask).sum(dim=1) / lengths.unsqueeze(1).to(x.dtype))
        return self.head(self.dropout(torch.cat(feats, dim=-1))).squeeze(-1)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(ids, lengths))


# --- the wide branch: an NB-weighted TF-IDF bag of unigrams and hashed n-grams, from the same token ids ---

NGRAM_MULT = 1_000_003  # n-gram (a, b[, c]) -> vocab_size + ((a * M + b) [* M + c]) % buckets


def ngram_features(ids: torch.Tensor, lengths: torch.Tensor, vocab_size: int, buckets: int,
                   n: int = 2) -> torch.Tensor:
    """Each row's distinct n-gram ids: unigrams and hashed 2..n-grams, sorted, with repeats and padding
    replaced by 0 (the padding id, whose weights are 0): a binary bag of n-grams."""
    t = torch.arange(ids.size(1), device=ids.device).unsqueeze(0)
    valid = t < lengths.unsqueeze(1)
    parts, key = [ids * valid], ids
    for k in range(1, n):  # an n-gram starting at t needs tokens t .. t + k
        key = key[:, :-1] * NGRAM_MULT + ids[:, k:]
        parts.append((vocab_size + key % buckets) * valid[:, k:])
    feats = torch.sort(torch.cat(parts, dim=1), dim=1).values
    repeat = torch.cat([torch.zeros_like(feats[:, :1]), (feats[:, 1:] == feats[:, :-1]).to(feats.dtype)], dim=1)
    return feats * (1 - repeat)


class WideNgrams(nn.Module):
    """logit = bias + sum_f u[f] / sqrt(sum_f q[f]) over a review's distinct n-grams f.

    With u = w * r * idf and q = idf^2 this is a logistic regression on L2-normalised binary TF-IDF features
    scaled by naive-Bayes log-count ratios r (NBSVM-style), fitted in `wide.py`; u and q are 0 for n-grams
    never seen in training, so they do not count.
    """

    def __init__(self, vocab_size: int, buckets: int, n: int = 2):
        super().__init__()
        self.vocab_size, self.buckets, self.n = vocab_size, buckets, n
        self.u = nn.Parameter(torch.zeros(vocab_size + buckets))
        self.q = nn.Parameter(torch.zeros(vocab_size + buckets))
        self.bias = nn.Parameter(torch.zeros(()))

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        feats = ngram_features(ids, lengths, self.vocab_size, self.buckets, self.n)
        num = self.u[feats].sum(dim=1)
        den = self.q[feats].sum(dim=1)
        return self.bias + num / torch.sqrt(den + 1e-6)


# Inputs shorter than this are stacked as if this long: the length terms are fitted on texts of a few words and
# more, and a straight line in s carried on to one or two tokens turned the wide branch's sign around.
STACK_MIN_LENGTH = 8


class WideAndDeep(nn.Module):
    """P(positive) = sigmoid((a + a' s) * BiLSTM logit + (b + b' s) * wide logit + c + c' s),
    s = 1 / sqrt(max(length, STACK_MIN_LENGTH)).

    The six numbers are fitted on held-out data (combine.py); the terms in s let a short input weigh and
    calibrate the two branches differently from a whole review. With a' = b' = c' = 0 this is the plain stack.
    """

    def __init__(self, deep: SentimentBiLSTM, wide: WideNgrams):
        super().__init__()
        self.cfg = deep.cfg
        self.deep, self.wide = deep, wide
        self.combine = nn.Parameter(torch.tensor([1.0, 1.0, 0.0, 0.0, 0.0, 0.0]))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        key = prefix + "combine"
        if key in state_dict and state_dict[key].numel() == 3:  # a stack from before the length terms
            state_dict[key] = torch.cat([state_dict[key], torch.zeros(3, dtype=state_dict[key].dtype)])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def logits(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        a, b, c, a_s, b_s, c_s = self.combine.unbind()
        s = torch.rsqrt(lengths.clamp(min=STACK_MIN_LENGTH).to(torch.float32))
        return (a + a_s * s) * self.deep.logits(ids, lengths) + (b + b_s * s) * self.wide(ids, lengths) + c + c_s * s

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(ids, lengths))
