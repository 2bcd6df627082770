"""Hierarchical classification metrics over a class tree read from a file.

The tree file (``load_class_tree``):

- ``.json`` (or any suffix but ``.txt``): a JSON object mapping each child to its parent,
  ``{"poodle": "dog", "dog": "animal", "animal": null}``, or the same map under one key,
  ``{"parents": {...}}``. A root maps to ``null`` or ``""``, or has no entry (a name that only
  appears as a parent). Names are non-empty strings; a key given twice is an error.
- ``.txt``: ImageNet's / WordNet's ``is_a`` edge list (HyCoCLIP's ``imagenet_isa.txt``): one
  ``parent child`` pair per line, whitespace-separated; blank lines and lines starting with ``#``
  are skipped. A child given two different parents is an error (that is a DAG, not a tree).

Several roots are joined under a virtual root ``"<root>"`` (``ClassTree.virtual_root``); it then
counts as any root does: depth 0 and a member of every ancestor set. A cycle is an error naming
it (``a -> b -> a``). Every error is a ``DataError`` naming the file and the key or line.

Depth: the root has depth 0, a child one more than its parent. For classes ``p`` (prediction)
and ``t`` (target), with ``A(x)`` the *strict* ancestors of ``x`` (its parent up to and including
the root, not ``x`` itself; ``|A(x)| = depth(x)``), as in HyCoCLIP's
``hierarchical_metrics.py`` (``all_ancestors_indices.pkl``):

- tree-induced error (TIE): ``d(p, t) = depth(p) + depth(t) - 2 depth(lca(p, t))``, the number
  of edges on the tree path (HyCoCLIP: networkx shortest path on the undirected tree);
- LCA hops (Bertinetto et al.'s LCA height of a mistake, measured from the prediction):
  ``h(p, t) = depth(p) - depth(lca(p, t))``, 0 when ``p = t``;
- HyCoCLIP's "LCA" number: ``|A(p)| - |A(p) & A(t)| + 1`` (equals ``h`` for two different
  leaves, 1 for a correct prediction);
- hierarchical precision ``|A(p) & A(t)| / |A(p)|``, recall ``|A(p) & A(t)| / |A(t)|``,
  Jaccard ``|A(p) & A(t)| / |A(p) | A(t)|``; an empty set over an empty set (only when a class
  is the root itself) counts 1.

``hierarchical_metrics`` averages each over all images (HyCoCLIP's protocol) and reports mistake
severity, the mean ``h`` over wrong predictions only (Bertinetto et al. 2020, "Making Better
Mistakes"). The per-pair quantities are looked up in C x C tables built once from a class x
ancestor indicator matrix (two matrix products), so 50,000 predictions over 1,000 classes take
milliseconds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from clipspace.config.textfile import read_utf8
from clipspace.errors import DataError

VIRTUAL_ROOT = "<root>"


@dataclass(frozen=True)
class ClassTree:
    """A rooted tree of named nodes. ``names[i]`` is node i, ``parent[i]`` its parent (-1 at the
    root), ``depth[i]`` its depth (root 0). Build one with ``ClassTree.from_parents`` or
    ``load_class_tree``; ``source`` names the file in error messages."""

    names: tuple[str, ...]
    parent: np.ndarray
    depth: np.ndarray
    root: int
    virtual_root: bool = False
    source: str = "<class tree>"
    index: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_parents(cls, parents: Mapping[str, str | None], source: str = "<class tree>"
                     ) -> ClassTree:
        """The tree of a child -> parent map (a root maps to None or "", or has no entry).
        DataError naming ``source`` and the key: non-string names, cycles, no nodes."""
        if not parents:
            raise DataError(f"{source}: the class tree is empty")
        order: dict[str, None] = {}
        edges: dict[str, str | None] = {}
        for child, par in parents.items():
            if not isinstance(child, str) or not child:
                raise DataError(f"{source}: class names must be non-empty strings, got "
                                f"{child!r}")
            if par is not None and not isinstance(par, str):
                raise DataError(f"{source}: the parent of {child!r} must be a string or null, "
                                f"got {type(par).__name__} {par!r}")
            order.setdefault(child)
            edges[child] = par or None
            if par:
                order.setdefault(par)
        names = list(order)
        roots = [n for n in names if edges.get(n) is None]
        _check_acyclic(edges, source)
        virtual = len(roots) > 1
        if virtual:
            if VIRTUAL_ROOT in order:
                raise DataError(f"{source}: {len(roots)} roots, and the name {VIRTUAL_ROOT!r} "
                                "that would join them is taken")
            names.append(VIRTUAL_ROOT)
            edges.update({r: VIRTUAL_ROOT for r in roots})
            roots = [VIRTUAL_ROOT]
        index = {n: i for i, n in enumerate(names)}
        parent = np.array([index[edges[n]] if edges.get(n) else -1 for n in names],
                          dtype=np.int64)
        depth = np.full(len(names), -1, dtype=np.int64)
        for i in range(len(names)):  # each chain walked once: depths are memoised
            chain = []
            j = i
            while depth[j] < 0 and parent[j] >= 0:
                chain.append(j)
                j = int(parent[j])
            if depth[j] < 0:  # the root
                depth[j] = 0
            for k in reversed(chain):
                depth[k] = depth[parent[k]] + 1
        return cls(tuple(names), parent, depth, index[roots[0]], virtual, source, index)

    def __len__(self) -> int:
        return len(self.names)

    def node(self, name: str) -> int:
        """The id of node ``name`` (DataError naming the file when it is not in the tree)."""
        try:
            return self.index[name]
        except KeyError:
            raise DataError(f"{self.source}: {name!r} is not in the class tree") from None

    def depth_of(self, name: str) -> int:
        """``depth(x)``: edges from the root to ``x`` (the root: 0)."""
        return int(self.depth[self.node(name)])

    def path(self, name: str) -> list[str]:
        """``x``, its parent, ..., the root: the inclusive ancestors, ``depth(x) + 1`` names."""
        i, out = self.node(name), []
        while i >= 0:
            out.append(self.names[i])
            i = int(self.parent[i])
        return out

    def ancestors(self, name: str) -> set[str]:
        """``A(x)``: the strict ancestors (the parent up to and including the root, not ``x``);
        ``|A(x)| = depth(x)``. HyCoCLIP's ancestor sets."""
        return set(self.path(name)[1:])

    def lca(self, a: str, b: str) -> str:
        """The lowest common ancestor: the deepest node on both ``path(a)`` and ``path(b)``
        (``a`` itself when ``a`` is an ancestor of ``b`` or equal to it)."""
        on_a = set(self.path(a))
        return next(n for n in self.path(b) if n in on_a)

    def lca_depth(self, a: str, b: str) -> int:
        """``depth(lca(a, b))``."""
        return self.depth_of(self.lca(a, b))

    def distance(self, a: str, b: str) -> int:
        """Tree-induced error ``d(a, b) = depth(a) + depth(b) - 2 depth(lca(a, b))``: the edges
        on the tree path between ``a`` and ``b`` (symmetric, 0 iff ``a = b``, a metric)."""
        return self.depth_of(a) + self.depth_of(b) - 2 * self.lca_depth(a, b)

    def lca_hops(self, pred: str, target: str) -> int:
        """``h(p, t) = depth(p) - depth(lca(p, t))``: the edges from the prediction up to the
        LCA (0 when ``p = t``); Bertinetto et al.'s LCA height of the mistake. Not symmetric."""
        return self.depth_of(pred) - self.lca_depth(pred, target)

    def hycoclip_lca(self, pred: str, target: str) -> int:
        """HyCoCLIP's "LCA" number ``|A(p)| - |A(p) & A(t)| + 1`` (``h(p, t)`` for two
        different leaves, 1 for ``p = t``)."""
        return len(self.ancestors(pred)) - len(self.ancestors(pred) & self.ancestors(target)) + 1

    def precision(self, pred: str, target: str) -> float:
        """Hierarchical precision ``|A(p) & A(t)| / |A(p)|`` (1 when ``A(p)`` is empty)."""
        ap, at = self.ancestors(pred), self.ancestors(target)
        return len(ap & at) / len(ap) if ap else 1.0

    def recall(self, pred: str, target: str) -> float:
        """Hierarchical recall ``|A(p) & A(t)| / |A(t)|`` (1 when ``A(t)`` is empty)."""
        ap, at = self.ancestors(pred), self.ancestors(target)
        return len(ap & at) / len(at) if at else 1.0

    def jaccard(self, pred: str, target: str) -> float:
        """``|A(p) & A(t)| / |A(p) | A(t)|`` (1 when both are empty)."""
        ap, at = self.ancestors(pred), self.ancestors(target)
        return len(ap & at) / len(ap | at) if ap | at else 1.0

    def class_ids(self, class_names: Sequence[str]) -> np.ndarray:
        """Node id of each class name; DataError naming the file and the missing (or repeated)
        class names."""
        missing = [c for c in class_names if c not in self.index]
        if missing:
            shown = ", ".join(repr(c) for c in missing[:10])
            more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
            raise DataError(f"{self.source}: {len(missing)} of {len(class_names)} class names "
                            f"are not in the class tree: {shown}{more}")
        seen: dict[str, int] = {}
        for c in class_names:
            seen[c] = seen.get(c, 0) + 1
        repeated = [c for c, k in seen.items() if k > 1]
        if repeated:
            raise DataError(f"{self.source}: class names repeat ({', '.join(map(repr, repeated))})"
                            "; key the tree by unique names (e.g. WordNet ids)")
        return np.array([self.index[c] for c in class_names], dtype=np.int64)


def _check_acyclic(edges: Mapping[str, str | None], source: str) -> None:
    """DataError naming the first cycle of the child -> parent map (``a -> b -> a``)."""
    done: set[str] = set()
    for start in edges:
        seen: dict[str, int] = {}
        walk: list[str] = []
        node: str | None = start
        while node is not None and node not in done:
            if node in seen:
                cycle = [*walk[seen[node]:], node]
                raise DataError(f"{source}: the class tree has a cycle: {' -> '.join(cycle)}")
            seen[node] = len(walk)
            walk.append(node)
            node = edges.get(node)
        done.update(walk)


def _reject_duplicates(source: str):
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in pairs:
            if k in out:
                raise DataError(f"{source}: key {k!r} appears twice (a class has one parent)")
            out[k] = v
        return out

    return hook


def _parse_json(text: str, source: str) -> Mapping[str, Any]:
    try:
        data = json.loads(text, object_pairs_hook=_reject_duplicates(source))
    except json.JSONDecodeError as err:
        raise DataError(f"{source}, line {err.lineno}: not valid JSON ({err.msg}); expected an "
                        "object {child: parent}") from None
    if isinstance(data, dict) and set(data) == {"parents"} and isinstance(data["parents"], dict):
        data = data["parents"]
    if not isinstance(data, dict):
        raise DataError(f"{source}: expected a JSON object {{child: parent}}, got "
                        f"{type(data).__name__}")
    return data


def _parse_isa(text: str, source: str) -> dict[str, str | None]:
    edges: dict[str, str | None] = {}
    where: dict[str, int] = {}
    for no, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        if len(parts) != 2:
            raise DataError(f"{source}, line {no}: expected 'parent child', got {line.strip()!r}")
        par, child = parts
        if child in edges and edges[child] != par:
            raise DataError(f"{source}, line {no}: {child!r} already has the parent "
                            f"{edges[child]!r} (line {where[child]}); a class tree gives each "
                            "class one parent")
        edges[child], where[child] = par, no
    return edges


def load_class_tree(path: str | Path) -> ClassTree:
    """The ``ClassTree`` of a file (module doc: a JSON child -> parent object, or a ``.txt``
    ``parent child`` edge list); DataError naming the file and the line or key at fault."""
    path = Path(path)
    text = read_utf8(path, "class tree file")
    source = str(path)
    edges = _parse_isa(text, source) if path.suffix.lower() == ".txt" else _parse_json(
        text, source)
    return ClassTree.from_parents(edges, source)


def match_class_names(tree: ClassTree, candidates: Sequence[Sequence[str]]) -> list[str]:
    """The first of ``candidates`` (lists of the same classes' names: e.g. the prompt names,
    then the folder names, which are WordNet ids for ImageNet) whose names are all in the tree
    and distinct; else the DataError of the first candidate (naming the missing classes)."""
    first: DataError | None = None
    for names in candidates:
        try:
            tree.class_ids(names)
            return list(names)
        except DataError as err:
            first = first or err
    raise first or DataError(f"{tree.source}: no class names to match")


@dataclass(frozen=True)
class PairTables:
    """C x C tables over a dataset's classes (index = class label): ``lca_depth[a, b]`` =
    ``depth(lca(a, b))``, ``common[a, b]`` = ``|A(a) & A(b)|``; ``depth[a]`` = ``|A(a)|``."""

    depth: np.ndarray
    lca_depth: np.ndarray
    common: np.ndarray


def pair_tables(tree: ClassTree, class_names: Sequence[str]) -> PairTables:
    """``PairTables`` of ``class_names`` from the class x node indicator ``M`` of inclusive
    ancestors (``M[a, n] = 1`` iff ``n`` is on ``path(a)``): ``M M^T = depth(lca) + 1`` and,
    with each class's own column cleared (``S``), ``S S^T = |A(a) & A(b)|``. Float32 products
    of 0/1 matrices are exact integers here (depths are far below 2^24)."""
    ids = tree.class_ids(class_names)
    paths = [tree.path(tree.names[i]) for i in ids]
    cols = {n: j for j, n in enumerate(dict.fromkeys(n for p in paths for n in p))}
    m = np.zeros((len(ids), len(cols)), dtype=np.float32)
    for a, p in enumerate(paths):
        m[a, [cols[n] for n in p]] = 1.0
    lca_depth = np.rint(m @ m.T).astype(np.int32) - 1
    own = [cols[p[0]] for p in paths]
    m[np.arange(len(ids)), own] = 0.0
    common = np.rint(m @ m.T).astype(np.int32)
    return PairTables(tree.depth[ids].astype(np.int32), lca_depth, common)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` with 0 / 0 = 1 (empty ancestor sets)."""
    out = np.ones(num.shape, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def hierarchical_metrics(pred: Any, target: Any, class_names: Sequence[str], tree: ClassTree,
                         tables: PairTables | None = None) -> dict[str, Any]:
    """Hierarchical scores of class predictions ``pred`` against labels ``target`` (integer
    arrays indexing ``class_names``; formulas in the module doc).

    Means over all N images: ``top1``, ``tree_induced_error`` (d(p, t)), ``lca_depth``
    (depth(lca(p, t)), higher is better), ``lca_hops`` (h(p, t), 0 when correct),
    ``hycoclip_lca`` (HyCoCLIP's "LCA", 1 when correct), ``hierarchical_precision``,
    ``hierarchical_recall``, ``hierarchical_f1`` (per-image harmonic mean of the two, 0 when
    both are 0), ``jaccard``. Over the ``mistakes`` (p != t) only: ``mistake_severity`` (mean
    h(p, t)), ``mistake_tree_distance`` (mean d), ``mistake_lca_depth``; these are None when
    there is no mistake. ``tables``: ``pair_tables(tree, class_names)`` when reused."""
    p = np.asarray(pred).reshape(-1)
    t = np.asarray(target).reshape(-1)
    c = len(class_names)
    if p.shape != t.shape or p.size == 0:
        raise DataError(f"need as many predictions as labels (> 0), got {p.size} and {t.size}")
    for what, v in (("prediction", p), ("label", t)):
        if not np.issubdtype(v.dtype, np.integer):
            raise DataError(f"{what}s must be integer class indices, got {v.dtype}")
        if v.min() < 0 or v.max() >= c:
            raise DataError(f"{what} {int(v.max() if v.max() >= c else v.min())} is not a "
                            f"class index (0..{c - 1})")
    tab = tables or pair_tables(tree, class_names)
    dp, dt = tab.depth[p].astype(np.float64), tab.depth[t].astype(np.float64)
    lca = tab.lca_depth[p, t].astype(np.float64)
    common = tab.common[p, t].astype(np.float64)
    dist = dp + dt - 2 * lca
    hops = dp - lca
    prec, rec = _ratio(common, dp), _ratio(common, dt)
    f1 = _ratio(2 * prec * rec, prec + rec)
    f1[(prec + rec) == 0] = 0.0
    wrong = p != t
    n_wrong = int(wrong.sum())

    def over_mistakes(v: np.ndarray) -> float | None:
        return float(v[wrong].mean()) if n_wrong else None

    return {
        "n": int(p.size),
        "top1": float(1.0 - n_wrong / p.size),
        "mistakes": n_wrong,
        "tree_induced_error": float(dist.mean()),
        "lca_depth": float(lca.mean()),
        "lca_hops": float(hops.mean()),
        "hycoclip_lca": float((dp - common + 1).mean()),
        "hierarchical_precision": float(prec.mean()),
        "hierarchical_recall": float(rec.mean()),
        "hierarchical_f1": float(f1.mean()),
        "jaccard": float(_ratio(common, dp + dt - common).mean()),
        "mistake_severity": over_mistakes(hops),
        "mistake_tree_distance": over_mistakes(dist),
        "mistake_lca_depth": over_mistakes(lca),
    }


__all__ = [
    "VIRTUAL_ROOT",
    "ClassTree",
    "PairTables",
    "hierarchical_metrics",
    "load_class_tree",
    "match_class_names",
    "pair_tables",
]
