"""Requests cut into units of model work, priced by the model's cost model.

A unit is at most `MAX_UNIT_ROWS` model rows (reviews, or windows of a sentence) and about `MAX_UNIT_S` of model
time, so a large request's units interleave with other requests' in the batcher. Its price is the model seconds
its rows cost inside a batch `width` rows wide: a long queue is served in full batches, so that is what queued
work costs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from senpos.runtime import BatchCost

MAX_UNIT_ROWS = 16
MAX_UNIT_S = 0.05
# Request body bytes per model step, for the door's estimate: an English token is ~5 bytes of JSON; a Chinese
# word ~1.6 characters, 3 bytes each in UTF-8 and 6 as \uXXXX escapes.
BYTES_PER_STEP = {"sentiment": 5.0, "pos": 8.0}


@dataclass
class Unit:
    """Items for one model call's worth of work, at most; `cost_s` is their model time inside a full batch."""

    items: Sequence[Any]
    cost_s: float


def row_price(cost: BatchCost, length: float, width: int) -> float:
    """Model seconds one row of `length` steps costs in a batch of `width` rows: its own step cost plus its
    share of the batch's fixed per-step and per-call costs."""
    return length * (cost.row_step + cost.step / width) + cost.call / width


@dataclass(frozen=True)
class Pricing:
    """A model's cost model, and the batch width its queue forms under load."""

    cost: BatchCost
    width: int
    bytes_per_step: float = 5.0

    def body(self, content_length: int) -> float:
        """Model seconds a request body of this many bytes is likely to need (the door's ticket)."""
        steps = content_length / self.bytes_per_step
        return steps * (self.cost.row_step + self.cost.step / self.width)


def cut(items: Sequence, lengths: Sequence[float], cost: BatchCost, width: int) -> list[Unit]:
    """Consecutive units of at most MAX_UNIT_ROWS items and about MAX_UNIT_S model seconds, each priced."""
    units, start, price = [], 0, 0.0
    for i, n in enumerate(lengths):
        row = row_price(cost, max(n, 1), width)
        if i > start and (i - start == MAX_UNIT_ROWS or price + row > MAX_UNIT_S):
            units.append(Unit(items[start:i], price))
            start, price = i, 0.0
        price += row
    if len(items) > start:
        units.append(Unit(items[start:], price))
    return units
