"""The BiLSTM sentiment classifier.

Padding never leaks into a review's score, by construction: the backward direction is a forward LSTM
run over each review reversed *within its own length* (padding stays at the end), so no state at a
real token has seen padding in either direction; pooling masks padding out. This also exports to a
plain ONNX LSTM with dynamic batch and sequence axes (no packed sequences needed).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class ModelConfig:
    vocab_size: int
    embed_dim: int = 100
    hidden: int = 128
    layers: int = 1
    dropout: float = 0.5
    pooling: str = "concat"  # "concat": final states + masked max + masked mean; "last": final states only


def reverse_index(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """Index that reverses each row's first `length` positions and leaves its padding in place."""
    t = torch.arange(max_len, device=lengths.device).unsqueeze(0)
    n = lengths.unsqueeze(1)
    return torch.where(t < n, n - 1 - t, t)


def _gather_time(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    return x.gather(1, index.unsqueeze(-1).expand(-1, -1, x.size(-1)))


class MaskedBiLSTMLayer(nn.Module):
    def __init__(self, input_size: int, hidden: int):
        super().__init__()
        self.fwd = nn.LSTM(input_size, hidden, batch_first=True)
        self.bwd = nn.LSTM(input_size, hidden, batch_first=True)

    def forward(self, x: torch.Tensor, rev: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out_f, _ = self.fwd(x)
        out_b, _ = self.bwd(_gather_time(x, rev))
        return out_f, _gather_time(out_b, rev)  # backward outputs back in reading order


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

    def logits(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        max_len = ids.size(1)
        rev = reverse_index(lengths, max_len)
        x = self.dropout(self.embedding(ids))
        for i, layer in enumerate(self.layers):
            out_f, out_b = layer(x, rev)
            x = torch.cat([out_f, out_b], dim=-1)
            if i < len(self.layers) - 1:
                x = self.dropout(x)
        last = _gather_time(out_f, (lengths - 1).unsqueeze(1)).squeeze(1)  # forward state at the last token
        first = out_b[:, 0]  # backward state after reading the whole review
        feats = [last, first]
        if self.cfg.pooling == "concat":
            mask = (torch.arange(max_len, device=ids.device).unsqueeze(0) < lengths.unsqueeze(1)).unsqueeze(-1)
            feats.append(x.masked_fill(~mask, -1e4).max(dim=1).values)
            feats.append((x * mask).sum(dim=1) / lengths.unsqueeze(1).to(x.dtype))
        return self.head(self.dropout(torch.cat(feats, dim=-1))).squeeze(-1)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(ids, lengths))
