"""The CG topology of one molecule: bonds given, angles, dihedrals and non-bonded pairs derived.

- angles ``(i, j, k)``: every pair of bonds sharing bead ``j``;
- dihedrals ``(i, j, k, l)``: every bond ``(j, k)`` with a further bond on each side (``i ≠ l``);
- non-bonded pairs ``(i, j)``: beads at least ``min_bonds_apart`` bonds apart along the bond graph,
  or not connected at all.

Prior parameters are keyed by the bead types of a term, in a canonical order (the smaller of the
type tuple and its reverse; bond lengths, angles and dihedrals are unchanged by reversing the
beads), so they carry over to any molecule made of the same bead types.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from functools import cached_property

from cglight.errors import ConfigError


def canonical(types: tuple[int, ...]) -> tuple[int, ...]:
    """The key of a term's bead types: the smaller of the tuple and its reverse."""
    return min(tuple(types), tuple(reversed(types)))


@dataclass(frozen=True)
class Topology:
    """``n`` beads joined by ``bonds`` (pairs of bead indices)."""

    n: int
    bonds: tuple[tuple[int, int], ...]

    @classmethod
    def from_bonds(cls, n: int, bonds, where: str = "bonds") -> Topology:
        pairs = []
        for b in bonds:
            b = tuple(int(i) for i in b)
            if len(b) != 2 or not all(0 <= i < n for i in b) or b[0] == b[1]:
                raise ConfigError(f"{where}: bond {list(b)} is not a pair of two different bead indices in [0, {n})")
            pairs.append((min(b), max(b)))
        return cls(n, tuple(sorted(set(pairs))))

    @cached_property
    def neighbours(self) -> list[list[int]]:
        adj: list[list[int]] = [[] for _ in range(self.n)]
        for i, j in self.bonds:
            adj[i].append(j)
            adj[j].append(i)
        return [sorted(a) for a in adj]

    @cached_property
    def angles(self) -> tuple[tuple[int, int, int], ...]:
        out = []
        for j, adj in enumerate(self.neighbours):
            for a in range(len(adj)):
                for b in range(a + 1, len(adj)):
                    out.append((adj[a], j, adj[b]))
        return tuple(out)

    @cached_property
    def dihedrals(self) -> tuple[tuple[int, int, int, int], ...]:
        out = []
        for j, k in self.bonds:
            for i in self.neighbours[j]:
                for m in self.neighbours[k]:
                    if i != k and m != j and i != m:
                        out.append((i, j, k, m))
        return tuple(out)

    def bond_distance(self, start: int) -> list[float]:
        """Number of bonds from ``start`` to every bead (``inf`` when not connected)."""
        dist = [float("inf")] * self.n
        dist[start] = 0
        queue = deque([start])
        while queue:
            i = queue.popleft()
            for j in self.neighbours[i]:
                if dist[j] == float("inf"):
                    dist[j] = dist[i] + 1
                    queue.append(j)
        return dist

    def pairs(self, min_bonds_apart: int) -> tuple[tuple[int, int], ...]:
        """Bead pairs ``i < j`` at least ``min_bonds_apart`` bonds apart (or unconnected)."""
        out = []
        for i in range(self.n):
            dist = self.bond_distance(i)
            out.extend((i, j) for j in range(i + 1, self.n) if dist[j] >= min_bonds_apart)
        return tuple(out)
