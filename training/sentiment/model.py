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

    def logits(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        max_len = ids.size(1)
        rev = reverse_index(lengths, max_len)
        x = self.dropout(self.embedding(ids))
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
