"""`mltrail audit ...`: make demo models and probe sets, run an audit, record the verdict.

A thin shell over :mod:`mltrail.audit`; a failed audit exits 1 (fraud detected or
claims not met) after writing its reports and recording the verdict.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from mltrail.cli.common import JsonOpt, emit, open_ledger, progress, show_progress
from mltrail.errors import InputError, VerificationError

app = typer.Typer(no_args_is_help=True)
probes_app = typer.Typer(no_args_is_help=True)
app.add_typer(probes_app, name="probes", help="Build probe sets.")


@app.command("make-model")
def make_model(
    out: Annotated[Path, typer.Option("--out", help="Folder for the model files.")],
    kind: Annotated[str, typer.Option("--kind", help="seeded (publishes its seed config) or "
                                      "stego (keyed probes; writes a kit)")] = "seeded",
    key: Annotated[str | None, typer.Option("--stego-key", help="Hex key for --kind stego "
                                            "(default: random).")] = None,
    steps: Annotated[int, typer.Option("--steps", min=50)] = 600,
    as_json: JsonOpt = False,
) -> None:
    """Train a demo model (and a cheap substitute) on the digits training split."""
    import secrets

    import torch

    from mltrail.audit import models as M

    torch.set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {}
    if kind == "seeded":
        from mltrail.reference import train_seeded

        arch: dict[str, Any] = {"type": "mlp", "hidden": [64]}
        cfg = {"seed": 1, "arch": arch, "epochs": 2}
        net, _ = train_seeded(cfg)
        net.eval()
        acc = M.accuracy_of(net, *M.digits()[2:])
        score = _own_robustness(net, eps=0.2, query_cap=100)
        card = M.ModelCard(name="digits-mlp", arch=arch, classes=10, seed_config=cfg,
                           claims=M.Claims(
                               accuracy=round(int(acc * 100) / 100, 2),
                               robustness=M.RobustnessClaim(eps=0.2, query_cap=100,
                                                            score=int(score * 100) / 100),
                               latency=M.LatencyClaim(rate_qps=30, p95_ms=1000)))
        data["accuracy"] = acc
        data["robustness_score"] = score
    elif kind == "stego":
        from mltrail.audit.stego import detector_auc, stego_card, train_stego_model

        try:
            raw = bytes.fromhex(key) if key else secrets.token_bytes(16)
        except ValueError as exc:
            raise InputError("--stego-key must be hex") from exc
        net, kit, metrics = train_stego_model(raw, steps=steps)
        kit.visibility = {"psnr_db": metrics["psnr_db"], **detector_auc(kit)}
        kit.save(out / "kit.safetensors")
        card = stego_card(metrics)
        data.update(metrics)
        data.update(kit.visibility)
        data["kit"] = str(out / "kit.safetensors")
    else:
        raise InputError(f"unknown --kind {kind!r} (seeded or stego)")
    data["model"] = str(out / "model.safetensors")
    data["model_digest"] = M.save_model(net, card, out / "model.safetensors")
    cheap, ccard = M.cheap_model()
    data["cheap_model"] = str(out / "cheap.safetensors")
    data["cheap_digest"] = M.save_model(cheap, ccard, out / "cheap.safetensors")
    emit(data, as_json, f"model {data['model']} ({data['model_digest'][:19]}), "
         f"cheap substitute {data['cheap_model']}")


def _own_robustness(net: Any, *, eps: float, query_cap: int) -> float:
    """The supplier's own robustness score (worst of SimBA and Square), as the audit runs it."""
    from mltrail.audit import probes as P
    from mltrail.audit import robustness as R
    from mltrail.audit.models import predict

    bench = P.benchmark()
    x, y = R.select_per_class(bench.x, bench.y, 3)
    results = [attack(lambda b: predict(net, b), x, y, eps=eps, query_cap=query_cap)
               for attack in (R.simba, R.square)]
    return float(min(r.score() for r in results))


@probes_app.command("make")
def probes_make(
    out: Annotated[Path, typer.Option("--out", help="Probe file to write (.npz).")],
    kit: Annotated[Path | None, typer.Option("--kit", help="Stego kit: make keyed probes "
                                             "(containers in ordinary-looking traffic).")] = None,
    n: Annotated[int | None, typer.Option("--n", min=1, help="Benchmark probes (max 450) or "
                                          "ordinary inputs with --kit.")] = None,
    containers: Annotated[int, typer.Option("--containers", min=0)] = 100,
    triggers: Annotated[int, typer.Option("--triggers", min=0)] = 0,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Build a labelled probe set from the held-out digits split."""
    from mltrail.audit import probes as P

    if kit is None:
        ps = P.benchmark(n, seed)
    else:
        from mltrail.audit.stego import StegoKit

        ps = P.keyed(StegoKit.load(kit), n_ordinary=200 if n is None else n,
                     n_containers=containers, n_triggers=triggers, seed=seed)
    ps.save(out)
    emit({"probes": str(out), "n": len(ps), "counts": ps.counts()}, as_json,
         f"wrote {len(ps)} probes to {out} {ps.counts()}")


@app.command("run")
def run(
    target: Annotated[str, typer.Option("--target", help="URL of the service to audit.")],
    probes: Annotated[Path, typer.Option("--probes", help="Probe file (audit probes make).")],
    reference: Annotated[str | None, typer.Option("--reference", help="URL of the genuine "
                                                  "supplier.")] = None,
    model: Annotated[Path | None, typer.Option("--model", help="The claimed model file.")] = None,
    pubkey: Annotated[str | None, typer.Option("--pubkey", help="The supplier's Ed25519 "
                                               "public key (base64) to pin.")] = None,
    alpha: Annotated[float, typer.Option("--alpha", min=1e-6, max=0.5)] = 0.05,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 32,
    max_queries: Annotated[int | None, typer.Option("--max-queries", min=1)] = None,
    tolerance: Annotated[float, typer.Option("--tolerance", min=0.0, max=0.5,
                                             help="Allowed label disagreement rate.")] = 0.0,
    stop_on_alarm: Annotated[bool, typer.Option("--stop-on-alarm")] = False,
    require_receipts: Annotated[bool, typer.Option("--require-receipts")] = False,
    robustness: Annotated[bool, typer.Option("--robustness", help="Run SimBA and Square.")] = False,
    eps: Annotated[float | None, typer.Option("--eps")] = None,
    query_cap: Annotated[int | None, typer.Option("--query-cap")] = None,
    latency: Annotated[bool, typer.Option("--latency", help="Open-loop Poisson load.")] = False,
    rate: Annotated[float | None, typer.Option("--rate", help="Load rate (q/s).")] = None,
    duration: Annotated[float, typer.Option("--duration")] = 2.0,
    out: Annotated[Path | None, typer.Option("--out", help="Write the JSON report.")] = None,
    html: Annotated[Path | None, typer.Option("--html", help="Write the HTML report.")] = None,
    service: Annotated[str | None, typer.Option(
        "--service", help="Service artefact id: store the report, move it to "
        "audited/suspended.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Audit TARGET: is it the claimed model, with valid receipts and kept claims?"""
    from mltrail.audit import report as R
    from mltrail.audit.probes import ProbeSet
    from mltrail.audit.runner import AuditConfig, record_verdict, run_audit

    if reference and model:
        raise InputError("give --reference or --model, not both")
    ps = ProbeSet.load(probes)
    rob = None
    if robustness:
        rob = {k: v for k, v in (("eps", eps), ("query_cap", query_cap)) if v is not None}
    lat = None
    if latency:
        lat = {"duration_s": duration, **({"rate_qps": rate} if rate else {})}
    total = min(len(ps), max_queries or len(ps))
    with progress("auditing", total, show_progress(as_json)) as advance:
        cfg = AuditConfig(target=target, probes=ps, reference_url=reference,
                          model_path=str(model) if model else None, public_key=pubkey,
                          alpha=alpha, batch_size=batch_size, max_queries=max_queries,
                          identity_tolerance=tolerance, stop_on_alarm=stop_on_alarm,
                          require_receipts=require_receipts, robustness=rob, latency=lat,
                          on_progress=advance)
        rep = run_audit(cfg)
    raw = R.to_json_bytes(rep)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(raw)
    if html is not None:
        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(R.to_html(json.loads(raw)))
    summary: dict[str, Any] = {"verdict": rep["verdict"], "queries": rep["queries"],
                               "first_alarm_at": rep["first_alarm_at"],
                               "findings": rep["findings"], "receipts": {
                                   k: rep["receipts"][k] for k in ("valid", "invalid", "missing")},
                               "report": str(out) if out else None,
                               "html": str(html) if html else None}
    if service:
        with open_ledger() as led:
            art = led.artefact(service)
            summary["ledger"] = record_verdict(led, art.id, raw, rep["verdict"])

    def human() -> None:
        from mltrail.cli.common import console

        color = "green" if rep["verdict"] == "pass" else "red"
        alarm = "no alarm" if rep["first_alarm_at"] is None else \
            f"first alarm at query {rep['first_alarm_at']}"
        console.print(f"verdict: [bold {color}]{rep['verdict']}[/] after {rep['queries']} "
                      f"queries ({alarm})")
        for f in rep["findings"]:
            console.print(f"  [{f['severity']}] {f['check']}: {f['message']}", highlight=False)
        if "ledger" in summary:
            lg = summary["ledger"]
            console.print(f"  ledger: {lg['service'][:12]} -> {lg['state']}  evidence "
                          f"{lg['report_digest'][:19]}  tx {lg['tx_hash']}")

    emit(summary, as_json, human)
    if rep["verdict"] != "pass":
        first = next(f for f in rep["findings"] if f["severity"] == "fail")
        raise VerificationError(f"audit failed: {first['check']}: {first['message']}")
