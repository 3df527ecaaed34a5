"""Small inline SVG drawings for the dashboard: lifecycle, lineage graph, PoL segments.

Pure functions from plain data to SVG text (every label escaped). They draw what the
caller passes and decide nothing about it.
"""

from __future__ import annotations

import html
from typing import Any

from mltrail.lifecycle import WILDCARD, Kind

E = html.escape


def lifecycle_svg(kind: Kind, current: str, terminal: str) -> str:
    """The kind's states in a row, transitions as arcs; ``current`` and its next moves lit."""
    states = [s for s in kind.states if s != terminal]
    w, gap, y = 104, 22, 90
    xs = {s: 10 + i * (w + gap) for i, s in enumerate(states)}
    width = 20 + len(states) * (w + gap)
    nxt = {t.target for t in kind.transitions
           if t.source in (current, WILDCARD) and t.target != terminal and current != terminal}
    parts = [f'<svg class="lifecycle" viewBox="0 0 {width} 180" role="img" '
             f'aria-label="lifecycle of a {E(kind.name)}">',
             '<defs><marker id="arr" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
             'markerHeight="7" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" '
             'fill="#8a94a6"/></marker></defs>']
    for t in kind.transitions:
        if t.source == WILDCARD or t.target == terminal or t.source not in xs:
            continue
        x1, x2 = xs[t.source] + w / 2, xs[t.target] + w / 2
        live = t.source == current
        cls = "edge live" if live else "edge"
        if t.source == t.target:
            parts.append(f'<path class="{cls}" d="M{x1 - 14},{y - 16} C{x1 - 30},{y - 58} '
                         f'{x1 + 30},{y - 58} {x1 + 14},{y - 16}" marker-end="url(#arr)"/>')
            continue
        forward = x2 > x1
        span = abs(x2 - x1)
        lift = min(70, 16 + span / 6)
        sy = y - 16 if forward else y + 16
        cy = sy - lift if forward else sy + lift
        parts.append(f'<path class="{cls}" d="M{x1},{sy} Q{(x1 + x2) / 2},{cy} {x2},{sy}" '
                     f'marker-end="url(#arr)"><title>{E(t.source)} → {E(t.target)}: '
                     f'{E(", ".join(t.roles))}</title></path>')
    for s, x in xs.items():
        cls = "state current" if s == current else ("state next" if s in nxt else "state")
        parts.append(f'<g class="{cls}" data-state="{E(s)}"><rect x="{x}" y="{y - 16}" '
                     f'width="{w}" height="32" rx="16"/><text x="{x + w / 2}" y="{y + 5}" '
                     f'text-anchor="middle">{E(s)}</text></g>')
    revoked = "state current" if current == terminal else "state terminal"
    parts.append(f'<g class="{revoked}" data-state="{E(terminal)}"><rect x="10" y="150" '
                 f'width="{w}" height="26" rx="13"/><text x="{10 + w / 2}" y="168" '
                 f'text-anchor="middle">{E(terminal)}</text></g><text class="note" '
                 f'x="{20 + w}" y="168">reachable from any state</text>')
    parts.append("</svg>")
    return "".join(parts)


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


def pol_segments_svg(segments: list[dict[str, Any]], threshold: float) -> str:
    """Per replayed segment: update size (bars) and replay error (dots) against the threshold."""
    if not segments:
        return ""
    n = len(segments)
    width, ph, left = max(420, 60 + n * 34), 130, 50
    bw = (width - left - 20) / n
    max_u = max(float(s["update_norm"]) for s in segments) or 1.0
    max_e = max([float(s["error"]) for s in segments] + [threshold * 1.5]) or 1.0
    p = [f'<svg class="plot" viewBox="0 0 {width} {2 * ph + 70}" width="{width}" role="img" '
         'aria-label="update size and replay error per segment">',
         f'<text x="{left}" y="14" class="axis-title">update size per segment '
         '(‖W after − W before‖)</text>']
    for i, s in enumerate(segments):
        hgt = (ph - 30) * float(s["update_norm"]) / max_u
        x = left + i * bw + 3
        p.append(f'<rect class="bar" x="{x:.1f}" y="{20 + ph - 30 - hgt:.1f}" width="{bw - 6:.1f}"'
                 f' height="{hgt:.1f}"><title>segment {s["index"]}: '
                 f'{float(s["update_norm"]):.4g}</title></rect>')
    top2 = ph + 40
    p.append(f'<text x="{left}" y="{top2 - 6}" class="axis-title">replay error per segment '
             f'(threshold {threshold:.3g})</text>')
    ty = top2 + ph - 30 - (ph - 30) * threshold / max_e
    p.append(f'<line class="threshold" x1="{left}" x2="{width - 10}" y1="{ty:.1f}" '
             f'y2="{ty:.1f}"/>')
    for i, s in enumerate(segments):
        e = float(s["error"])
        cy = top2 + ph - 30 - (ph - 30) * min(e, max_e) / max_e
        cx = left + i * bw + bw / 2
        cls = "dot ok" if s.get("ok") else "dot bad"
        p.append(f'<circle class="{cls}" cx="{cx:.1f}" cy="{cy:.1f}" r="5"><title>segment '
                 f'{s["index"]} (steps {s["start_step"]}–{s["end_step"]}): error {e:.3g}'
                 f'</title></circle><text x="{cx:.1f}" y="{top2 + ph - 12}" '
                 f'text-anchor="middle" class="tick">{s["index"]}</text>')
    p.append(f'<text x="{left - 6}" y="{top2 + ph - 30}" text-anchor="end" class="tick">0</text>'
             f'<text x="{left - 6}" y="{ty + 4:.1f}" text-anchor="end" class="tick">'
             f'{threshold:.3g}</text></svg>')
    return "".join(p)
