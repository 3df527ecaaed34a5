"""Lifecycle drawings laid out by Graphviz ``dot``, as inline SVG.

Owns :func:`lifecycle` (a kind's state machine, the current state and its next moves lit)
and the one call of the ``dot`` program. Without ``dot`` it returns a clear note and the
transitions as a list, never a tangle. It draws what the lifecycle says and decides
nothing about who may move (the contract does).
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess

from markupsafe import Markup, escape

from mltrail.lifecycle import WILDCARD, Kind

GOOD, BAD, ACC, LINE, INK = "#1a7f37", "#b42318", "#2f6fde", "#b7bfcd", "#1f2430"
FONT = "Helvetica"


def _q(s: str) -> str:
    """A DOT string literal."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def lifecycle_dot(kind: Kind, current: str, terminal: str) -> tuple[str, list[str]]:
    """The DOT source of ``kind``'s lifecycle and its states in node order."""
    states = [s for s in kind.states if s != terminal]
    nxt = {t.target for t in kind.transitions
           if t.source in (current, WILDCARD) and current != terminal}
    edges: dict[tuple[str, str], list[str]] = {}
    for t in kind.transitions:
        if t.source == WILDCARD or t.target == terminal or t.source not in states:
            continue
        roles = edges.setdefault((t.source, t.target), [])
        roles += [r for r in t.roles if r not in roles]
    lines = ["digraph lifecycle {", "rankdir=LR; nodesep=0.25; ranksep=0.45; bgcolor=transparent;",
             f'node [shape=box style="rounded,filled" fillcolor=white color="{LINE}" '
             f'fontname={_q(FONT)} fontsize=12 fontcolor="{INK}" height=0.34 '
             'margin="0.2,0.05" penwidth=1.4];',
             f'edge [color="{LINE}" arrowsize=0.7 penwidth=1.2];']
    order = states + [terminal]
    for i, s in enumerate(order):
        attrs = [f"id=s{i}", f"label={_q(s)}", f"tooltip={_q(s)}"]
        if s == current:
            attrs += [f'fillcolor="{ACC}"', f'color="{ACC}"', 'fontcolor=white',
                      'class="state current"']
        elif s in nxt and s != terminal:
            attrs += [f'color="{GOOD}"', 'style="rounded,filled,dashed"', "penwidth=2",
                      'class="state next"']
        elif s == terminal:
            attrs += [f'color="{BAD}"', 'style="rounded,filled,dashed"',
                      'class="state terminal"']
        else:
            attrs.append('class="state"')
        if s == terminal:
            attrs[1] = f"label={_q(s + ' (from any state)')}"
        lines.append(f"{_q(s)} [{' '.join(attrs)}];")
    for (a, b), roles in edges.items():
        live = a == current
        tip = _q(f"{a} → {b}: {', '.join(roles)}")
        style = f'color="{GOOD}" penwidth=2.2 class="edge live"' if live else 'class="edge"'
        lines.append(f"{_q(a)} -> {_q(b)} [tooltip={tip} {style}];")
    lines.append(f"{{rank=sink; {_q(terminal)}}}")
    lines.append("}")
    return "\n".join(lines), order


@functools.lru_cache(maxsize=256)
def _dot_svg(source: str) -> str | None:
    exe = shutil.which("dot")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "-Tsvg"], input=source.encode(), capture_output=True,
                             timeout=20, check=True).stdout.decode()
    except (OSError, subprocess.SubprocessError, UnicodeDecodeError):
        return None
    return out[out.index("<svg"):] if "<svg" in out else None


def lifecycle(kind: Kind, current: str, terminal: str) -> Markup:
    """``kind``'s state machine laid out by dot, as an ``<svg class="lifecycle">``; each
    state's group carries ``data-state``. Without dot: a note and the moves as a list."""
    source, order = lifecycle_dot(kind, current, terminal)
    svg = _dot_svg(source)
    if svg is None:
        moves = Markup("").join(
            Markup("<li>{} → {}: {}</li>").format(t.source if t.source != WILDCARD
                                                  else "any state", t.target, ", ".join(t.roles))
            for t in kind.transitions)
        return Markup('<div class="lifecycle-missing"><p class="muted">The lifecycle drawing '
                      'needs Graphviz: <code>dot</code> was not found (install it with '
                      '<code>make setup</code> or <code>apt-get install graphviz</code>). '
                      'Current state: <strong>{}</strong>.</p><ul>{}</ul></div>'
                      ).format(current, moves)
    svg = re.sub(r'<svg width="([\d.]+)pt" height="([\d.]+)pt"',
                 lambda m: f'<svg class="lifecycle" role="img" aria-label="lifecycle of a '
                           f'{escape(kind.name)}" width="{float(m.group(1)) * 4 / 3:.0f}" '
                           f'style="max-width:100%;height:auto"', svg, count=1)
    svg = re.sub(r'<g id="s(\d+)" class="node',
                 lambda m: f'<g id="s{m.group(1)}" data-state="{escape(order[int(m.group(1))])}"'
                           f' class="node', svg)
    return Markup(svg)
