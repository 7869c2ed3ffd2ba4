"""The three-way split of the organism's corpus, by file, with near-duplicates kept together.

A file's split is decided by its *group*, not by itself: two files whose long lines
(>= ``LONG_LINE`` characters, stripped) overlap by more than ``DUPLICATE_SHARE`` of the
smaller file's set are joined (union-find), so ``encodings/cp865.py`` and ``cp858.py``
(99.8% shared lines) always land on the same side. A group goes to

    test  if sha256(min path of the group)[0] <  TEST_BELOW          (~10%)
    dev   if                                  <  DEV_BELOW           (~10%)
    train otherwise,

so the rule depends only on the paths and their contents, never on the order of listing.
Lines found in more than ``COMMON_LINE_FILES`` files (licence banners) are not used to
join groups: they would chain unrelated files together.

``dev`` is for recipe tuning and the training gates; every finding uses ``test``.
Not here: reading the files (``corpus``) or batching (``training``).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from itertools import combinations

LONG_LINE = 40
DUPLICATE_SHARE = 0.5
COMMON_LINE_FILES = 50
TEST_BELOW, DEV_BELOW = 26, 52  # of 256: ~10% test, ~10% dev
SPLITS = ("train", "dev", "test")


def long_lines(text: str) -> set[str]:
    return {s for s in (line.strip() for line in text.splitlines()) if len(s) >= LONG_LINE}


def near_duplicate_groups(texts: dict[str, str]) -> list[list[str]]:
    """Groups of paths (sorted) whose files share > DUPLICATE_SHARE of their long lines."""
    lines = {name: long_lines(text) for name, text in texts.items()}
    files_of = defaultdict(list)
    for name in sorted(lines):
        for line in lines[name]:
            files_of[line].append(name)
    shared = defaultdict(int)
    for names in files_of.values():
        if len(names) <= COMMON_LINE_FILES:
            for pair in combinations(names, 2):
                shared[pair] += 1
    parent = {name: name for name in texts}

    def root(name):
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    for (a, b), count in shared.items():
        if count > DUPLICATE_SHARE * min(len(lines[a]), len(lines[b])):
            parent[root(a)] = root(b)
    groups = defaultdict(list)
    for name in sorted(texts):
        groups[root(name)].append(name)
    return sorted(groups.values())


def split_of_group(group: list[str]) -> str:
    first_byte = hashlib.sha256(min(group).encode()).digest()[0]
    return "test" if first_byte < TEST_BELOW else "dev" if first_byte < DEV_BELOW else "train"


def assign(texts: dict[str, str]) -> dict[str, str]:
    """path -> "train" | "dev" | "test" for every path of ``texts``."""
    return {name: split_of_group(group) for group in near_duplicate_groups(texts) for name in group}


def shared_line_share(texts: dict[str, str], split: str, other: str = "train") -> float:
    """Share of ``split``'s long lines (counted per file) that occur verbatim in ``other``."""
    where = assign(texts)
    seen = set().union(*(long_lines(t) for n, t in texts.items() if where[n] == other))
    mine = [line for n, t in texts.items() if where[n] == split for line in long_lines(t)]
    return sum(line in seen for line in mine) / max(1, len(mine))
