"""Shared prompt prefixes: which prompts of one scoring call can reuse a key/value cache.

The prompts a scoring call gets differ mostly at the end: the quality classifier's
few-shot examples open every prompt, and the logprob scorer asks about each aspect of
one sample with the same prompt but its last line.  ``prefix_plan`` finds, on token
ids, the prefix all prompts share (the *root*) and, under it, groups of prompts that
share a longer one, so a backend runs each shared part once and only the rest per
prompt.  Every prompt keeps at least its last token out of any prefix: that position's
logits are the ones scored.
"""
from __future__ import annotations

from dataclasses import dataclass

# A group's own prefix must add this many tokens to the root's to be worth a forward
# pass of its own (below it, its prompts just join the root group).
MIN_SHARED = 16


@dataclass
class PrefixGroup:
    """Prompts (``members``, indices into the call's list) sharing their first ``prefix`` tokens."""
    prefix: int
    members: list[int]


def common_prefix_length(a: list[int], b: list[int]) -> int:
    """Number of leading tokens ``a`` and ``b`` share."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def prefix_plan(ids: list[list[int]], min_shared: int = MIN_SHARED) -> tuple[int, list[PrefixGroup]]:
    """(root length, groups): the root is the prefix every prompt shares; each group's
    prefix extends it by ``min_shared`` tokens or more, and the prompts sharing nothing
    longer than the root form one group at the root.  Groups partition the prompts."""
    if not ids:
        return 0, []
    if any(not seq for seq in ids):
        raise ValueError("an empty prompt has no next-token position to score")
    shortest = min(map(len, ids))
    root = min(shortest - 1, min(common_prefix_length(ids[0], seq) for seq in ids))
    # Sorted token lists put prompts with long common prefixes next to each other.
    order = sorted(range(len(ids)), key=ids.__getitem__)
    groups: list[PrefixGroup] = []
    at_root: list[int] = []

    def close(members: list[int], shared: int) -> None:
        prefix = min(shared, min(len(ids[i]) for i in members) - 1)
        if len(members) > 1 and prefix - root >= min_shared:
            groups.append(PrefixGroup(prefix, sorted(members)))
        else:
            at_root.extend(members)

    members, shared = [order[0]], len(ids[order[0]])
    for prev, cur in zip(order, order[1:]):
        together = min(shared, common_prefix_length(ids[prev], ids[cur]))
        if together - root >= min_shared:
            members.append(cur)
            shared = together
        else:
            close(members, shared)
            members, shared = [cur], len(ids[cur])
    close(members, shared)
    if at_root:
        groups.append(PrefixGroup(root, sorted(at_root)))
    groups.sort(key=lambda g: g.members[0])
    return root, groups
