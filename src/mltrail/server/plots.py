"""Small inline SVG drawings for the dashboard: lifecycle (by Graphviz) and lineage graph.

Pure functions from plain data to SVG text (every label escaped). They draw what the
caller passes and decide nothing about it. Report plots live in :mod:`mltrail.render`.
"""

from __future__ import annotations

import html
from typing import Any

from mltrail.lifecycle import Kind
from mltrail.render import graph

E = html.escape


def lifecycle_svg(kind: Kind, current: str, terminal: str) -> str:
    """The kind's state machine laid out by Graphviz (:func:`mltrail.render.graph.lifecycle`):
    ``current`` filled, its next moves dashed green."""
    return str(graph.lifecycle(kind, current, terminal))


def lineage_svg(root: dict[str, Any], ancestors: list[dict[str, Any]],
                descendants: list[dict[str, Any]], limit: int = 60) -> str:
    """Ancestors left, the artefact in the middle, descendants right; every box a link."""
    nodes = {root["id"]: (0, root)}
    for d in ancestors[:limit]:
        nodes[d["id"]] = (-int(d["depth"]), d)
    for d in descendants[:limit]:
        nodes[d["id"]] = (int(d["depth"]), d)
    cols = sorted({c for c, _ in nodes.values()})
    w, h, gx, gy = 170, 44, 70, 18
    pos: dict[str, tuple[float, float]] = {}
    tallest = 1
    for ci, c in enumerate(cols):
        members = [i for i, (cc, _) in nodes.items() if cc == c]
        tallest = max(tallest, len(members))
        for ri, i in enumerate(members):
            pos[i] = (10 + ci * (w + gx), 10 + ri * (h + gy))
    width, height = 20 + len(cols) * (w + gx) - gx, 20 + tallest * (h + gy) - gy
    parts = [f'<svg class="lineage" viewBox="0 0 {width} {height}" width="{width}" '
             f'role="img" aria-label="lineage graph">']
    for i, (_, d) in nodes.items():
        for p in d.get("parents", []):
            if p in pos:
                (px, py), (cx, cy) = pos[p], pos[i]
                parts.append(f'<path class="edge" d="M{px + w},{py + h / 2} C{px + w + gx / 2},'
                             f'{py + h / 2} {cx - gx / 2},{cy + h / 2} {cx},{cy + h / 2}"/>')
    for i, (c, d) in nodes.items():
        x, y = pos[i]
        label = d.get("name") or i[:10]
        cls = "node root" if c == 0 else "node"
        parts.append(f'<a href="/a/{E(i)}" class="{cls}" data-id="{E(i)}"><rect x="{x}" y="{y}" '
                     f'width="{w}" height="{h}" rx="8"/><text x="{x + 10}" y="{y + 19}" '
                     f'class="name">{E(label[:22])}</text><text x="{x + 10}" y="{y + 35}" '
                     f'class="sub">{E(d["kind"])} · {E(d["state"])}</text></a>')
    parts.append("</svg>")
    return "".join(parts)
