"""Lineage graphs: an artefact's ancestors or descendants with the steps between them.

Each node carries kind, state, name and short digest; each edge the activity (the step
recorded in the child's metadata, else ``derived``). Renders as a Rich tree, JSON,
Graphviz DOT, and SVG/PNG through the ``dot`` program. Reads the ledger and the
store; never writes the ledger.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from mltrail.errors import InputError
from mltrail.provenance import artefacts

if TYPE_CHECKING:
    from mltrail.ledger.client import Ledger
    from mltrail.ledger.reader import IndexReader

Direction = Literal["up", "down", "both"]
Format = Literal["tree", "json", "dot", "svg", "png"]
FORMATS: tuple[Format, ...] = ("tree", "json", "dot", "svg", "png")


def check_format(fmt: str) -> Format:
    """``fmt`` as a :data:`Format`, or an :class:`InputError` naming the choices."""
    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}: use tree, json, dot, svg or png")
    return fmt


def direction_of(up: bool, down: bool) -> Direction:
    """The direction ``--up`` / ``--down`` ask for (neither: both; both: refused)."""
    if up and down:
        raise InputError("give --up or --down, not both")
    return "down" if down else "up" if up else "both"


def graph(led: Ledger | IndexReader, artefact_id: str,
          direction: Direction = "both") -> dict[str, Any]:
    """``{"root", "direction", "nodes": [...], "edges": [{"from", "to", "activity"}]}``
    (edges point from parent to child) plus the ledger's ``artefact``, ``ancestors`` and
    ``descendants`` lists for the directions asked."""
    data = led.lineage(artefact_id)
    if direction == "up":
        data["descendants"] = []
    elif direction == "down":
        data["ancestors"] = []
    rows = [{**data["artefact"], "depth": 0}, *data["ancestors"],
            *[{**d, "depth": -d["depth"]} for d in data["descendants"]]]
    ids = {r["id"] for r in rows}
    nodes, edges = [], []
    for r in rows:
        meta = artefacts.metadata(led.home.store, led.artefact(r["id"])) or {}
        act = meta.get("activity") if isinstance(meta.get("activity"), dict) else None
        step = str(act.get("step")) if act else "derived"
        nodes.append({"id": r["id"], "kind": r["kind"], "state": r["state"],
                      "name": str(meta.get("name") or r.get("name") or ""),
                      "digest": r["content_digest"],
                      "owner": r["owner"], "depth": r["depth"], "activity": act})
        for p in r["parents"]:
            if p in ids:
                edges.append({"from": p, "to": r["id"], "activity": step})
    return {"root": data["artefact"]["id"], "direction": direction, "nodes": nodes,
            "edges": edges, "artefact": data["artefact"], "ancestors": data["ancestors"],
            "descendants": data["descendants"]}


def label(node: dict[str, Any]) -> str:
    short = node["digest"].removeprefix("sha256:")[:12]
    return f"{node['kind']} {node['name'] or node['id'][:10]} ({node['state']}) {short}"


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(g: dict[str, Any]) -> str:
    """Graphviz DOT source for a lineage graph."""
    lines = ["digraph lineage {", "  rankdir=LR;",
             '  node [shape=box, style="rounded,filled", fontname="Helvetica"];',
             '  edge [fontname="Helvetica", fontsize=10];']
    colours = {"dataset": "#dbeafe", "model": "#dcfce7", "service": "#fef3c7"}
    for n in g["nodes"]:
        text = (f"{n['kind']}: {n['name'] or n['id'][:10]}\\n{n['state']}\\n"
                f"{n['digest'].removeprefix('sha256:')[:12]}")
        width = ", penwidth=2" if n["id"] == g["root"] else ""
        lines.append(f'  {_q(n["id"])} [label="{_esc_label(text)}", '
                     f'fillcolor={_q(colours.get(n["kind"], "#f3f4f6"))}{width}];')
    for e in g["edges"]:
        lines.append(f"  {_q(e['from'])} -> {_q(e['to'])} [label={_q(e['activity'])}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _esc_label(text: str) -> str:
    # keep the \n line breaks DOT understands; escape quotes only
    return text.replace('"', '\\"')


def dot_binary() -> str:
    found = shutil.which("dot")
    if not found:
        raise InputError("Graphviz 'dot' is not installed",
                         hint="run 'make graphviz' (apt-get install graphviz)")
    return found


def render(g: dict[str, Any], fmt: Literal["svg", "png"]) -> bytes:
    """SVG or PNG bytes drawn by Graphviz."""
    proc = subprocess.run([dot_binary(), f"-T{fmt}"], input=to_dot(g).encode(),
                          capture_output=True, timeout=120, check=False)
    if proc.returncode != 0:
        raise InputError(f"dot failed: {proc.stderr.decode(errors='replace').strip()[:200]}")
    return proc.stdout


def write(g: dict[str, Any], fmt: Literal["svg", "png"], out: Path) -> Path:
    from mltrail._fs import atomic_write

    atomic_write(out, render(g, fmt), durable=False)
    return out


@dataclass
class TreeNode:
    """One line of a drawn lineage: an artefact (reached by ``step``) or a section title."""

    text: str
    step: str | None = None
    children: list[TreeNode] = field(default_factory=list)


def tree(g: dict[str, Any]) -> TreeNode:
    """The graph as a tree from its root: ancestors and/or descendants, each path once."""
    by_id = {n["id"]: n for n in g["nodes"]}
    parents: dict[str, list[tuple[str, str]]] = {}
    children: dict[str, list[tuple[str, str]]] = {}
    for e in g["edges"]:
        parents.setdefault(e["to"], []).append((e["from"], e["activity"]))
        children.setdefault(e["from"], []).append((e["to"], e["activity"]))

    def grow(node: TreeNode, ident: str, nxt: dict[str, list[tuple[str, str]]],
             seen: frozenset[str]) -> TreeNode:
        for other, step in nxt.get(ident, []):
            if other not in seen:
                node.children.append(grow(TreeNode(label(by_id[other]), step), other, nxt,
                                          seen | {other}))
        return node

    root_id, direction = g["root"], g["direction"]
    root = TreeNode(label(by_id[root_id]))
    walks = [("ancestors", parents)] if direction == "up" else \
        [("descendants", children)] if direction == "down" else \
        [("ancestors", parents), ("descendants", children)]
    for title, nxt in walks:
        if direction == "both":
            root.children.append(grow(TreeNode(title), root_id, nxt, frozenset({root_id})))
        else:
            grow(root, root_id, nxt, frozenset({root_id}))
    return root


def save_or_text(g: dict[str, Any], fmt: Format, out: Path | None) -> Path | str:
    """A lineage in ``fmt`` (not ``tree``): written to ``out`` (returned), or its text when
    ``out`` is None. Images always go to a file (default ``lineage-<id>.<fmt>``)."""
    from mltrail._fs import atomic_write

    if fmt in ("svg", "png"):
        return write(g, fmt, out or Path(f"lineage-{g['root'][2:12]}.{fmt}"))
    if fmt == "tree":
        raise InputError("the tree format is drawn, not saved")
    text = json.dumps(g, indent=2, sort_keys=True) + "\n" if fmt == "json" else to_dot(g)
    if out is None:
        return text
    atomic_write(out, text.encode(), durable=False)
    return out
