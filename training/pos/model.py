"""The POS tagger: word embedding (word2vec init) + a character CNN per word -> BiLSTM -> tag scores.

The character CNN gives new words (common in Chinese) sensible features from their characters.
A sentence's tags never depend on its batch: the BiLSTM layers never let padding reach a real word
(training/layers.py), and the CNN's max-pool only looks at each word's own character positions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from training.layers import MaskedBiLSTMLayer, reverse_index


@dataclass
class TaggerConfig:
    n_words: int
    n_chars: int
    n_tags: int
    n_lex: int = 0  # lexicon feature ids (0 = no lexicon feature)
    lex_dim: int = 16
    word_dim: int = 100
    char_dim: int = 50
    char_filters: int = 100
    char_width: int = 3
    hidden: int = 200
    layers: int = 1
    dropout: float = 0.33


class CharCNN(nn.Module):
    def __init__(self, n_chars: int, dim: int, filters: int, width: int):
        super().__init__()
        self.embedding = nn.Embedding(n_chars, dim, padding_idx=0)
        self.conv = nn.Conv1d(dim, filters, width, padding=width // 2)

    def forward(self, chars: torch.Tensor) -> torch.Tensor:
        """chars (batch, words, max_chars) -> (batch, words, filters)."""
        b, w, c = chars.shape
        flat = chars.reshape(b * w, c)
        x = self.conv(self.embedding(flat).transpose(1, 2))  # (b*w, filters, c)
        x = torch.relu(x).masked_fill((flat == 0).unsqueeze(1), -1e4)  # only the word's own characters
        return x.max(dim=2).values.reshape(b, w, -1)


class Tagger(nn.Module):
    """words (batch, time), chars (batch, time, max_chars), lex (batch, time), lengths (batch,)
    -> tag scores (batch, time, tags). `lex` is each word's tag in jieba's dictionary (senpos.text.chinese.Lexicon)."""

    def __init__(self, cfg: TaggerConfig):
        super().__init__()
        self.cfg = cfg
        self.word_embedding = nn.Embedding(cfg.n_words, cfg.word_dim, padding_idx=0)
        self.chars = CharCNN(cfg.n_chars, cfg.char_dim, cfg.char_filters, cfg.char_width)
        self.lex_embedding = nn.Embedding(cfg.n_lex, cfg.lex_dim) if cfg.n_lex else None
        first = cfg.word_dim + cfg.char_filters + (cfg.lex_dim if cfg.n_lex else 0)
        sizes = [first] + [2 * cfg.hidden] * (cfg.layers - 1)
        self.layers = nn.ModuleList(MaskedBiLSTMLayer(s, cfg.hidden) for s in sizes)
        self.dropout = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(2 * cfg.hidden, cfg.n_tags)

    def forward(self, words: torch.Tensor, chars: torch.Tensor, lex: torch.Tensor, lengths: torch.Tensor
                ) -> torch.Tensor:
        rev = reverse_index(lengths, words.size(1))
        feats = [self.word_embedding(words), self.chars(chars)]
        if self.lex_embedding is not None:
            feats.append(self.lex_embedding(lex))
        x = self.dropout(torch.cat(feats, dim=-1))
        for layer in self.layers:
            out_f, out_b = layer(x, rev)
            x = self.dropout(torch.cat([out_f, out_b], dim=-1))
        return self.out(x)


@dataclass
class BoundaryConfig:
    n_chars: int
    n_bigrams: int
    n_places: int = 6  # senpos.text.chinese.JIEBA_PLACES
    char_dim: int = 64
    bigram_dim: int = 64
    place_dim: int = 16
    encoder: str = "cnn"  # "cnn": `layers` convolutions of `width` (fast on a CPU); "lstm": one BiLSTM layer
    hidden: int = 128
    layers: int = 3
    width: int = 5
    dropout: float = 0.2


class BoundaryModel(nn.Module):
    """The segmentation corrector: per character (its key, the bigram ending at it, its place in jieba's word)
    -> a CNN or a BiLSTM -> one score, > 0 where a word begins. chars, bigrams, places (batch, time),
    lengths (batch,) -> scores (batch, time). Batch-invariant: the CNN zeroes every padding position after
    each layer (so padding looks like the zero padding at a text's end), the BiLSTM is a MaskedBiLSTMLayer."""

    def __init__(self, cfg: BoundaryConfig):
        super().__init__()
        self.cfg = cfg
        self.char_embedding = nn.Embedding(cfg.n_chars, cfg.char_dim, padding_idx=0)
        self.bigram_embedding = nn.Embedding(cfg.n_bigrams, cfg.bigram_dim, padding_idx=0)
        self.place_embedding = nn.Embedding(cfg.n_places, cfg.place_dim, padding_idx=0)
        first = cfg.char_dim + cfg.bigram_dim + cfg.place_dim
        if cfg.encoder == "cnn":
            self.convs = nn.ModuleList(nn.Conv1d(first if i == 0 else cfg.hidden, cfg.hidden, cfg.width,
                                                 padding=cfg.width // 2) for i in range(cfg.layers))
            width = cfg.hidden
        elif cfg.encoder == "lstm":
            self.lstm = MaskedBiLSTMLayer(first, cfg.hidden)
            width = 2 * cfg.hidden
        else:
            raise ValueError(f"encoder must be cnn or lstm, not {cfg.encoder!r}")
        self.dropout = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(width, 1)

    def forward(self, chars: torch.Tensor, bigrams: torch.Tensor, places: torch.Tensor, lengths: torch.Tensor
                ) -> torch.Tensor:
        x = torch.cat([self.char_embedding(chars), self.bigram_embedding(bigrams), self.place_embedding(places)], -1)
        x = self.dropout(x)
        if self.cfg.encoder == "cnn":
            mask = (torch.arange(chars.size(1), device=chars.device).unsqueeze(0) < lengths.unsqueeze(1))
            mask = mask.unsqueeze(1).to(x.dtype)  # (batch, 1, time)
            x = x.transpose(1, 2) * mask
            for conv in self.convs:
                x = self.dropout(torch.relu(conv(x)) * mask)
            x = x.transpose(1, 2)
        else:
            out_f, out_b = self.lstm(x, reverse_index(lengths, chars.size(1)))
            x = self.dropout(torch.cat([out_f, out_b], dim=-1))
        return self.out(x).squeeze(-1)
