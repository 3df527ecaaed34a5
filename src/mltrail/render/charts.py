"""Report plots as inline SVG (matplotlib, Agg): one file stays one file.

Owns the pictures of the reports: the training curve of a proof (per checkpoint, marked by
who computed it), the replay error of each challenged segment against its threshold (log
scale; an exact replay is drawn on a floor and labelled), the evidence paths of an
audit's sequential tests, per-class robustness and the latency histogram. Each function
takes the report's plain data and returns ``<figure>`` markup, or ``""`` when there is
nothing to draw. It draws what it is given and decides nothing about it.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from markupsafe import Markup

GOOD, BAD, ACC, MUTED = "#1a7f37", "#b42318", "#2f6fde", "#6b7385"


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "none", "font.size": 9, "axes.spines.top": False,
                         "axes.spines.right": False, "axes.titlesize": 10,
                         "axes.titlelocation": "left"})
    return plt


def _svg(fig: Any, cls: str, caption: str) -> Markup:
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r'<svg ([^>]*?)width="([\d.]+)pt" height="([\d.]+)pt"',
                 lambda m: f'<svg class="chart" role="img" {m.group(1)}'
                           f'width="{float(m.group(2)) * 4 / 3:.0f}" '
                           f'height="{float(m.group(3)) * 4 / 3:.0f}"', svg, count=1)
    return Markup('<figure class="plot {}">{}<figcaption>{}</figcaption></figure>').format(
        cls, Markup(svg), caption)


def _f(v: Any) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if not math.isnan(x) else None


def _i(v: Any) -> str:
    return str(v) if isinstance(v, int) and not isinstance(v, bool) else "?"


def training_curve(points: Sequence[Mapping[str, Any]],
                   segments: Sequence[Mapping[str, Any]] = ()) -> Markup:
    """Loss and accuracy per checkpoint; a line per source (the verifier's own numbers
    solid, the prover's claims dashed); replayed segments shaded."""
    pts = [p for p in points if isinstance(p, Mapping) and _f(p.get("step")) is not None
           and (_f(p.get("loss")) is not None or _f(p.get("accuracy")) is not None)]
    if not pts:
        return Markup("")
    plt = _pyplot()
    has_acc = any(_f(p.get("accuracy")) is not None for p in pts)
    fig, axes = plt.subplots(1, 2 if has_acc else 1, figsize=(9 if has_acc else 5.5, 2.8))
    axes = list(axes) if has_acc else [axes]
    styles: dict[str, tuple[str, str, str, str]] = {
        "verifier": ("-", "o", ACC, "computed by the verifier"),
        "prover": ("--", "s", MUTED, "recorded by the prover (not checked)")}
    for ax, key, title in zip(axes, ("loss", "accuracy"), ("loss", "accuracy"), strict=False):
        for s in segments:
            a, b = _f(s.get("start_step")), _f(s.get("end_step"))
            if a is not None and b is not None:
                ax.axvspan(a, b, color=GOOD if s.get("ok") else BAD, alpha=0.08, lw=0)
        for src, (ls, mk, col, name) in styles.items():
            xy = [(_f(p["step"]), _f(p.get(key))) for p in pts
                  if p.get("source", "verifier") == src and _f(p.get(key)) is not None]
            if xy:
                ax.plot([x for x, _ in xy], [y for _, y in xy], ls=ls, marker=mk, ms=3.5,
                        color=col, label=name)
        ax.set_xlabel("training step (checkpoint)")
        ax.set_title(f"{title} per checkpoint")
        if key == "accuracy":
            ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.25)
    axes[0].legend(fontsize=8, frameon=False)
    sources = {str(p.get("source", "verifier")) for p in pts} & set(styles)
    who = " and ".join(styles[s][3] for s in ("verifier", "prover") if s in sources)
    return _svg(fig, "curve", f"Training curve: {who}; shaded: the replayed segments "
                              "(green reproduced, red did not).")


def replay_errors(segments: Sequence[Mapping[str, Any]], threshold: float,
                  optim_threshold: float | None = None) -> Markup:
    """Replay error of each challenged segment against the threshold, log scale. An exact
    replay (error 0) sits on the floor marked "exact"; a segment that could not be
    replayed (error ∞) sits on the ceiling marked "failed"."""
    if not segments:
        return Markup("")
    plt = _pyplot()
    errs = [_f(s.get("error")) for s in segments]
    oerrs = [_f(s.get("optim_error")) for s in segments]
    finite = [e for e in errs + oerrs if e is not None and 0 < e < math.inf]
    thr = [t for t in (threshold, optim_threshold) if t and t > 0]
    lo = min(finite + thr + [1.0]) / 30
    hi = max(finite + thr + [lo * 10]) * 30
    fig, ax = plt.subplots(figsize=(max(7.0, min(11.0, 3.0 + 0.45 * len(segments))), 3.0))
    xs = list(range(len(segments)))

    def place(e: float | None) -> float:
        if e is None or e <= 0:
            return lo
        return hi if math.isinf(e) else e

    for i, (s, e) in enumerate(zip(segments, errs, strict=True)):
        col = GOOD if s.get("ok") else BAD
        ax.scatter([i], [place(e)], s=42, color=col, zorder=3,
                   marker="o" if e is not None and 0 < e < math.inf else "D")
        if e is not None and e <= 0:
            ax.annotate("exact", (i, lo), textcoords="offset points", xytext=(0, 7),
                        ha="center", fontsize=7, color=col)
        elif e is None or math.isinf(e):
            ax.annotate("failed", (i, hi), textcoords="offset points", xytext=(0, -12),
                        ha="center", fontsize=7, color=col)
    if any(o is not None for o in oerrs):
        ax.scatter([i for i, o in enumerate(oerrs) if o is not None],
                   [place(o) for o in oerrs if o is not None], s=16, marker="s",
                   facecolors="none", edgecolors=MUTED, zorder=2, label="optimizer state")
    if threshold > 0:
        ax.axhline(threshold, color=BAD, ls="--", lw=1.2,
                   label=f"threshold {threshold:.3g}")
    if optim_threshold and optim_threshold > 0 and optim_threshold != threshold:
        ax.axhline(optim_threshold, color=MUTED, ls=":", lw=1,
                   label=f"optimizer threshold {optim_threshold:.3g}")
    else:
        ax.text(0.01, 0.98, "threshold 0: the replay must be bit-exact", fontsize=8,
                color=BAD, transform=ax.transAxes, va="top")
    ax.set_yscale("log")
    ax.set_ylim(lo / 2, hi * 2)
    if not finite and not thr:  # nothing but exact replays against an exact threshold
        ax.set_yticks([], [])
        ax.minorticks_off()
    ax.set_xticks(xs, [f"#{_i(s.get('index'))}\n{_i(s.get('start_step'))}–"
                       f"{_i(s.get('end_step'))}" for s in segments], fontsize=7)
    ax.set_xlim(-0.6, len(segments) - 0.4)
    ax.set_ylabel("replay error (relative)")
    ax.set_xlabel("challenged segment (checkpoint #, steps)")
    ax.set_title("replay error per challenged segment")
    ax.grid(axis="y", alpha=0.25)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, frameon=False, loc="upper right")
    return _svg(fig, "replay-error",
                "Each dot is a replayed segment: below the dashed threshold it reproduced "
                "(green), above it it did not (red). Error 0 (an exact replay) is drawn on "
                "the floor.")


def sequential(seq: Mapping[str, Mapping[str, Any]]) -> Markup:
    """Log evidence of every sequential test against the number of queries, with each
    test's rejection threshold (dashed) and where it rejected."""
    seq = {k: s for k, s in seq.items() if isinstance(s.get("path"), list) and s["path"]}
    if not seq:
        return Markup("")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 3.2))
    for i, (name, s) in enumerate(seq.items()):
        path = [_f(v) or 0.0 for v in s.get("path") or []]
        if not path:
            continue
        col = f"C{i}"
        ax.plot(range(1, len(path) + 1), path, color=col, lw=1.4, label=name)
        thr = _f(s.get("threshold"))
        if thr is not None:
            ax.axhline(thr, color=col, ls="--", lw=0.8)
        at = s.get("rejected_at") or s.get("decided_at") if s.get("rejected") else None
        if isinstance(at, int) and 0 < at <= len(path):
            ax.scatter([at], [path[at - 1]], color=col, marker="x", s=40, zorder=3)
    ax.set_xlabel("observations (queries)")
    ax.set_ylabel("log evidence against H0")
    ax.set_title("sequential tests: evidence as the queries come in")
    ax.grid(alpha=0.25)
    ax.legend(fontsize=8, frameon=False)
    return _svg(fig, "sequential", "A test rejects H0 (the service serves the claimed "
                                   "model) when its line crosses its dashed threshold (×).")


def robustness(rob: Mapping[str, Any]) -> Markup:
    attacks = [a for a in rob.get("attacks") or [] if isinstance(a, Mapping)
               and isinstance(a.get("per_class_median"), Mapping)]
    if not attacks:
        return Markup("")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 3.0))
    width = 0.8 / len(attacks)
    for j, a in enumerate(attacks):
        per = a["per_class_median"]
        classes = sorted(per, key=lambda c: int(c) if str(c).isdigit() else str(c))
        vals = [_f(per[c]) if _f(per[c]) is not None else _f(a.get("query_cap")) or 0.0
                for c in classes]
        ax.bar([k + j * width for k in range(len(classes))], vals, width=width,
               label=str(a.get("attack")))
        ax.set_xticks([k + width * (len(attacks) - 1) / 2 for k in range(len(classes))],
                      [str(c) for c in classes])
    cap = _f(attacks[0].get("query_cap"))
    if cap is not None:
        ax.axhline(cap, color="k", ls=":", lw=0.8, label="query cap")
    ax.set_xlabel("class")
    ax.set_ylabel("median queries to flip")
    eps = _f(attacks[0].get("eps"))
    ax.set_title("per-class robustness" + (f" (ε = {eps:g})" if eps is not None else ""))
    ax.legend(fontsize=8, frameon=False)
    return _svg(fig, "robustness", "Higher bars: more queries needed to flip a label.")


def latency(lat: Mapping[str, Any]) -> Markup:
    values = [v for v in (_f(x) for x in lat.get("latencies_ms") or []) if v is not None]
    if not values:
        return Markup("")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 3.0))
    ax.hist(values, bins=40, color="C2")
    for q in ("p50_ms", "p95_ms", "p99_ms"):
        v = _f(lat.get(q))
        if v is not None:
            ax.axvline(v, ls="--", lw=0.8, color="k")
            ax.text(v, ax.get_ylim()[1] * 0.9, q[:3], fontsize=8)
    claim = lat.get("claim") or {}
    if isinstance(claim, Mapping) and _f(claim.get("p95_ms")):
        ax.axvline(float(claim["p95_ms"]), color=BAD, lw=1.2, label="claimed p95")
        ax.legend(fontsize=8, frameon=False)
    ax.set_xlabel("latency (ms, from scheduled arrival)")
    ax.set_ylabel("requests")
    rate = _f(lat.get("rate_qps"))
    ax.set_title("latency" + (f" under open-loop Poisson load at {rate:g} q/s" if rate else ""))
    return _svg(fig, "latency", "Dashed: measured percentiles; red: the claimed p95.")
