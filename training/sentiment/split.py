"""Grouped fit / select / report split: reviews of (probably) the same movie stay on one side.

IMDB's train and test splits are disjoint by movie (up to 30 reviews per movie), but the data has no movie
id, and a random split of train puts reviews of one movie on both sides, which overstated validation by
2.3 points. Here reviews are grouped before splitting:
- exact duplicates (same text after lowercasing and collapsing whitespace) share a group;
- two reviews that share at least `min_shared` capitalised mid-sentence words (names of actors,
  characters, titles) that occur in at most `max_df` reviews of the corpus (a movie has at most 30)
  share a group; groups are the connected components of that graph.
Chains of shared names make one large component; it goes to the fit part whole, so every group
in select and report is disjoint from fit and from each other.
"""

from __future__ import annotations

import random
import re
from collections import Counter, defaultdict
from collections.abc import Sequence

# A capitalised word not at the start of the text or of a sentence.
_NAME = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-z]{2,}\b")
_SPACE = re.compile(r"\s+")


def _find(parent: list[int], x: int) -> int:
    while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x


def group_reviews(texts: Sequence[str], min_shared: int = 3, max_df: int = 30) -> list[int]:
    """A group id for each text (connected components of duplicate / shared-name links): the index of the
    group's first text, so the same texts give the same ids in every process."""
    parent = list(range(len(texts)))

    def union(a: int, b: int) -> None:
        parent[_find(parent, a)] = _find(parent, b)

    first_seen: dict[str, int] = {}
    for i, text in enumerate(texts):
        key = _SPACE.sub(" ", text.lower()).strip()
        if key in first_seen:
            union(i, first_seen[key])
        else:
            first_seen[key] = i

    names = [set(_NAME.findall(t)) for t in texts]
    df = Counter(w for ws in names for w in ws)
    postings: dict[str, list[int]] = defaultdict(list)
    for i, ws in enumerate(names):
        for w in ws:
            if 2 <= df[w] <= max_df:
                postings[w].append(i)
    shared: Counter[tuple[int, int]] = Counter()
    for docs in postings.values():
        for a in range(len(docs)):
            for b in range(a + 1, len(docs)):
                shared[docs[a], docs[b]] += 1
    for (a, b), n in shared.items():
        if n >= min_shared:
            union(a, b)
    # Name a group by its first member: the union-find roots depend on set iteration order (string hashing
    # is randomised per process), the components do not.
    first: dict[int, int] = {}
    roots = [_find(parent, i) for i in range(len(texts))]
    return [first.setdefault(r, i) for i, r in enumerate(roots)]


def grouped_split(
    labels: Sequence[int], groups: Sequence[int], fractions: tuple[float, float], seed: int,
) -> tuple[list[int], list[int], list[int]]:
    """Indices (fit, select, report); select and report get about `fractions` of the reviews each.

    Whole groups are drawn at random (fixed seed) from those of at most 30 reviews until each held-out
    part has its share of each label; larger groups and everything left go to fit.
    """
    rng = random.Random(seed)
    members: dict[int, list[int]] = defaultdict(list)
    for i, g in enumerate(groups):
        members[g].append(i)
    small = sorted(g for g, m in members.items() if len(m) <= 30)
    rng.shuffle(small)
    n_label = Counter(labels)
    parts: list[list[int]] = [[], []]
    counts = [Counter(), Counter()]
    for g in small:
        group_labels = Counter(labels[i] for i in members[g])
        for p, frac in enumerate(fractions):
            if all(counts[p][y] + c <= round(frac * n_label[y]) for y, c in group_labels.items()):
                parts[p] += members[g]
                counts[p].update(group_labels)
                break
    held = set(parts[0]) | set(parts[1])
    fit = [i for i in range(len(labels)) if i not in held]
    rng.shuffle(fit)
    return fit, sorted(parts[0]), sorted(parts[1])
