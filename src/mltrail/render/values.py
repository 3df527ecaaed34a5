"""Every value a report holds, rendered for people: the one place that turns data into cells.

Owns :func:`value` (any JSON-like value to safe HTML) and the small formatters beside it
(numbers, addresses, digests, key names). Nested mappings become sub-tables, lists become
short lists or tables, addresses carry a name where the caller knows one. It never
prints a ``dict``/``list`` repr or JSON, never reads the ledger or the disk, and decides
nothing about what a value means for a verdict.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from jinja2 import Undefined
from markupsafe import Markup, escape

ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
DIGEST = re.compile(r"^(sha256:|0x)?[0-9a-fA-F]{64}$")
MAX_ITEMS = 12  # list items shown before "… N more"
MAX_COLUMNS = 8  # a list of mappings with more keys than this is shown as sub-tables
NONE = Markup('<span class="none">—</span>')


def label(key: Any) -> str:
    """A mapping key for people: ``alpha_per_test`` -> ``alpha per test``."""
    return str(key).replace("_", " ").strip() or "—"


def number(v: float | int) -> str:
    """Numbers for people: ints as they are, floats to four significant digits, very
    small or large ones in scientific form, non-finite ones by name."""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return str(v)
    if math.isnan(v):
        return "not a number"
    if math.isinf(v):
        return "∞" if v > 0 else "−∞"
    if v == 0:
        return "0"
    a = abs(v)
    if a < 1e-3 or a >= 1e6:
        return f"{v:.3e}".replace("e-0", "e-").replace("e+0", "e")
    return f"{v:.4g}"


def short(text: str, head: int = 10, tail: int = 4) -> str:
    """``0x12345678…abcd``: a long identifier shortened, both ends kept."""
    return text if len(text) <= head + tail + 1 else f"{text[:head]}…{text[-tail:]}"


def address(v: str, names: Mapping[str, str] | None = None) -> Markup:
    """An Ethereum address: its local name where one is known (``names`` keyed by the
    lower-case address), the address shortened."""
    name = (names or {}).get(v.lower())
    code = Markup('<code class="addr" title="{}">{}</code>').format(v, short(v))
    return Markup('<span class="who">{} {}</span>').format(name, code) if name else code


def digest(v: str) -> Markup:
    """A sha256 digest, shortened, the full value in the tooltip."""
    pre = "sha256:" if v.startswith("sha256:") else ("0x" if v.startswith("0x") else "")
    return Markup('<code class="digest" title="{}">{}</code>').format(
        v, short(v, head=len(pre) + 12, tail=4))


def text(v: str, names: Mapping[str, str] | None = None) -> Markup:
    if ADDRESS.match(v):
        return address(v, names)
    if DIGEST.match(v):
        return digest(v)
    return Markup(escape(v)) if v else NONE


def value(v: Any, names: Mapping[str, str] | None = None, depth: int = 0) -> Markup:
    """Any report value as HTML for a table cell (never a repr or JSON)."""
    if v is None or isinstance(v, Undefined):
        return NONE
    if hasattr(v, "model_dump"):
        v = v.model_dump()
    if isinstance(v, bool):
        return Markup("yes" if v else "no")
    if isinstance(v, int | float):
        return Markup(escape(number(v)))
    if isinstance(v, str):
        return text(v, names)
    if isinstance(v, Mapping):
        return mapping(v, names, depth)
    if isinstance(v, Sequence | set | frozenset):
        return items(list(v), names, depth)
    return Markup(escape(str(v)))


def mapping(d: Mapping[Any, Any], names: Mapping[str, str] | None = None,
            depth: int = 0) -> Markup:
    """A mapping as a two-column sub-table (keys for people)."""
    if not d:
        return NONE
    rows = Markup("").join(
        Markup("<tr><th>{}</th><td>{}</td></tr>").format(label(k), value(x, names, depth + 1))
        for k, x in d.items())
    return Markup('<table class="sub">{}</table>').format(rows)


def _scalar(v: Any) -> bool:
    return v is None or isinstance(v, bool | int | float | str)


def items(xs: list[Any], names: Mapping[str, str] | None = None, depth: int = 0) -> Markup:
    """A list: short runs of numbers or words inline, numbers in bulk summarised, mappings
    with the same few keys as a table, anything else as a bulleted list."""
    if not xs:
        return Markup('<span class="none">none</span>')
    if all(isinstance(x, int | float) and not isinstance(x, bool) for x in xs) \
            and len(xs) > MAX_ITEMS:
        finite = [float(x) for x in xs if math.isfinite(float(x))]
        if not finite:
            return Markup("{} values").format(len(xs))
        return Markup("{} values from {} to {}").format(len(xs), number(min(finite)),
                                                       number(max(finite)))
    shown, more = xs[:MAX_ITEMS], len(xs) - MAX_ITEMS
    tail = Markup('<span class="more">… {} more</span>').format(more) if more > 0 else ""
    if all(_scalar(x) for x in shown) and all(len(str(x)) <= 40 for x in shown):
        return Markup('<span class="items">{}{}</span>').format(
            Markup(", ").join(value(x, names, depth + 1) for x in shown),
            Markup(" ") + tail if tail else "")
    if all(isinstance(x, Mapping) for x in shown):
        cols: list[Any] = []
        for x in shown:
            cols += [k for k in x if k not in cols]
        if len(cols) <= MAX_COLUMNS:
            return records(shown, cols, names, depth) + tail
    lis = Markup("").join(Markup("<li>{}</li>").format(value(x, names, depth + 1))
                          for x in shown)
    return Markup('<ul class="items">{}</ul>').format(lis) + tail


def records(rows: list[Mapping[Any, Any]], cols: list[Any],
            names: Mapping[str, str] | None = None, depth: int = 0) -> Markup:
    """Mappings with the same keys as one table, a column per key."""
    head = Markup("").join(Markup("<th>{}</th>").format(label(c)) for c in cols)
    body = Markup("").join(
        Markup("<tr>{}</tr>").format(Markup("").join(
            Markup("<td>{}</td>").format(value(r.get(c), names, depth + 1)) for c in cols))
        for r in rows)
    return Markup('<table class="sub records"><thead><tr>{}</tr></thead><tbody>{}</tbody>'
                  '</table>').format(head, body)
