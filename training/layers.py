"""Layers shared by the sentiment and POS models.

Padding never leaks into a sequence's outputs, by construction: the backward direction is a forward
LSTM run over each sequence reversed *within its own length* (padding stays at the end), so no state
at a real token has seen padding in either direction. This also exports to a plain ONNX LSTM with
dynamic batch and sequence axes (no packed sequences needed).
"""

from __future__ import annotations

import torch
from torch import nn


def reverse_index(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """Index that reverses each row's first `length` positions and leaves its padding in place."""
    t = torch.arange(max_len, device=lengths.device).unsqueeze(0)
    n = lengths.unsqueeze(1)
    return torch.where(t < n, n - 1 - t, t)


def gather_time(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    return x.gather(1, index.unsqueeze(-1).expand(-1, -1, x.size(-1)))


class MaskedBiLSTMLayer(nn.Module):
    def __init__(self, input_size: int, hidden: int):
        super().__init__()
        self.fwd = nn.LSTM(input_size, hidden, batch_first=True)
        self.bwd = nn.LSTM(input_size, hidden, batch_first=True)

    def forward(self, x: torch.Tensor, rev: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out_f, _ = self.fwd(x)
        out_b, _ = self.bwd(gather_time(x, rev))
        return out_f, gather_time(out_b, rev)  # backward outputs back in reading order
