"""`mltrail audit ...`: make demo models and probe sets, run an audit, record the verdict.

A thin shell over :mod:`mltrail.audit`; a failed audit exits 1 (fraud detected or
claims not met) after writing its reports and recording the verdict.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mltrail.cli.common import JsonOpt, emit, open_ledger, progress, show_progress
from mltrail.errors import InputError, VerificationError

app = typer.Typer(no_args_is_help=True)
probes_app = typer.Typer(no_args_is_help=True)
app.add_typer(probes_app, name="probes", help="Build probe sets: the auditor's own held data, "
              "fresh, benchmark or keyed (stego) probes for audits.\n\nExample: mltrail "
              "audit probes make --out probes.npz --n 200")


@app.command("make-model")
def make_model(
    out: Annotated[Path, typer.Option("--out", help="Folder for the model files.")],
    kind: Annotated[str, typer.Option("--kind", help="seeded (publishes its seed config), "
                                      "stego (keyed probes; writes a kit) or sklearn (a "
                                      "scikit-learn pipeline for MLServer, with skops and "
                                      "ONNX reference cards)")] = "seeded",
    key: Annotated[str | None, typer.Option("--stego-key", help="Hex key for --kind stego "
                                            "(default: random).")] = None,
    steps: Annotated[int, typer.Option("--steps", min=50, help="Training steps of the "
                                       "stego model.")] = 600,
    as_json: JsonOpt = False,
) -> None:
    """Train a demo model (and a cheap substitute) on the digits training split.

    Example: mltrail audit make-model --kind seeded --out demo-model
    """
    from mltrail.audit.workflows import make_demo_model

    data = make_demo_model(out, kind, stego_key=key, steps=steps)
    emit(data, as_json, f"model {data['model']} ({data['model_digest'][:19]}), "
         f"cheap substitute {data['cheap_model']}")


@probes_app.command("make")
def probes_make(
    out: Annotated[Path, typer.Option("--out", help="Probe file to write (.npz).")],
    kit: Annotated[Path | None, typer.Option("--kit", help="Stego kit: make keyed probes "
                                             "(containers in ordinary-looking traffic).")] = None,
    n: Annotated[int | None, typer.Option("--n", min=1, help="Probes (auditor-held: max 300; "
                                          "benchmark: max 150) or ordinary inputs with "
                                          "--kit.")] = None,
    source: Annotated[str, typer.Option("--source", help="held (the auditor's own data, "
                                        "never published: the default), fresh (generated) "
                                        "or benchmark (public: cannot pass an audit "
                                        "alone).")] = "held",
    containers: Annotated[int, typer.Option("--containers", min=0, help="Stego containers "
                                            "among them (with --kit).")] = 100,
    triggers: Annotated[int, typer.Option("--triggers", min=0, help="Keyed trigger inputs "
                                          "to add (with --kit).")] = 0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the selection and "
                                      "augmentations.")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Build a labelled probe set: the auditor's own held data by default.

    Example: mltrail audit probes make --out probes.npz --n 200
    """
    from mltrail.audit import probes as P

    if kit is None:
        makers = {"held": lambda: P.held(n or 300, seed), "fresh": lambda: P.fresh(n or 300, seed),
                  "benchmark": lambda: P.benchmark(n, seed)}
        if source not in makers:
            raise InputError(f"unknown --source {source!r} (held, fresh or benchmark)")
        ps = makers[source]()
    else:
        from mltrail.audit.stego import StegoKit

        ps = P.keyed(StegoKit.load(kit), n_ordinary=200 if n is None else n,
                     n_containers=containers, n_triggers=triggers, seed=seed)
    ps.save(out)
    emit({"probes": str(out), "n": len(ps), "counts": ps.counts()}, as_json,
         f"wrote {len(ps)} probes to {out} {ps.counts()}")


@app.command("register")
def register(
    target: Annotated[str, typer.Option("--target", help="URL of the running service: "
                                        "mltrail's own API (its /v1/model supplies the "
                                        "claims) or .../v2/models/NAME.")],
    name: Annotated[str, typer.Option("--name", help="Service name.")],
    model_id: Annotated[str | None, typer.Option("--model-id", help="The model artefact the "
                                                 "service serves (its parent).")] = None,
    reference: Annotated[str | None, typer.Option("--reference", help="URL of a reference "
                                                  "service to compare against.")] = None,
    model: Annotated[Path | None, typer.Option("--model", help="The claimed model file and "
                                               "card (needed for a service that does not "
                                               "speak mltrail's own API).")] = None,
    pubkey: Annotated[str | None, typer.Option("--pubkey", help="The service's receipt key "
                                               "(base64 Ed25519), if it signs.")] = None,
    availability: Annotated[float | None, typer.Option("--availability", min=0.5, max=1.0,
                                                       help="Claimed share of requests "
                                                       "answered.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Register a service with its signed claims (read from --target or --model now, then fixed).

    Example: mltrail --as oscar audit register --target http://127.0.0.1:8000 --name digits
    """
    from mltrail.audit.claims import register_service
    from mltrail.audit.workflows import claims_from_target

    claims = claims_from_target(target, name, reference=reference, availability=availability,
                                model=model, public_key=pubkey)
    with open_ledger() as led:
        reg, digest = register_service(led, claims, model_id=model_id)
    emit({"artefact_id": reg.artefact_id, "claims_digest": digest, "tx_hash": reg.tx_hash,
          "block": reg.block, "gas_used": reg.gas_used}, as_json,
         f"registered service {reg.artefact_id} with claims {digest[:19]}")


@app.command("run")
def run(
    service: Annotated[str | None, typer.Argument(
        help="Service artefact id: its claims come from the ledger and the verdict is "
        "recorded there.")] = None,
    target: Annotated[str | None, typer.Option("--target", help="URL to audit (default: the "
                                               "endpoint in the ledger claims); "
                                               ".../v2/models/NAME speaks the Open "
                                               "Inference Protocol.")] = None,
    protocol: Annotated[str, typer.Option("--protocol", help="auto (from the URL: "
                                          "/v2/models/NAME is v2; --adapter means the "
                                          "adapter), mltrail, oip or adapter.")] = "auto",
    adapter: Annotated[Path | None, typer.Option("--adapter", help="Adapter file (YAML or "
                                                 "JSON) describing another JSON API.")] = None,
    probes: Annotated[Path | None, typer.Option("--probes", help="Probe file (default: "
                                                "fresh probes from a secret seed).")] = None,
    data: Annotated[Path | None, typer.Option("--data", help="Probes from your own data: "
                                              ".npz with x, optional y and data_kind.")] = None,
    data_kind: Annotated[str | None, typer.Option("--data-kind", help="image, tabular or "
                                                  "tokens (overrides the file's).")] = None,
    traffic: Annotated[Path | None, typer.Option("--traffic", help="Clients' submissions "
                                                 "(JSON lines, docs/receipts.md).")] = None,
    reference: Annotated[str | None, typer.Option("--reference", help="URL of the genuine "
                                                  "supplier.")] = None,
    model: Annotated[Path | None, typer.Option("--model", help="The claimed model file with "
                                               "its card: the reference.")] = None,
    pubkey: Annotated[str | None, typer.Option("--pubkey", help="The supplier's Ed25519 "
                                               "public key (base64) to pin.")] = None,
    alpha: Annotated[float, typer.Option("--alpha", min=1e-6, max=0.5, help="False-alarm "
                                         "rate of the whole audit.")] = 0.05,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, max=256,
                                            help="Largest request (sizes are drawn "
                                            "1..N).")] = 32,
    max_queries: Annotated[int | None, typer.Option("--max-queries", min=1, help="Most "
                                                    "inputs to send (default 300).")] = None,
    tolerance: Annotated[float, typer.Option("--tolerance", min=0.0, max=0.5,
                                             help="Allowed label disagreement rate.")] = 0.0,
    stop_on_alarm: Annotated[bool, typer.Option("--stop-on-alarm", help="Stop at the first "
                                                "rejected test.")] = False,
    require_receipts: Annotated[bool, typer.Option("--require-receipts", help="A missing "
                                                   "receipt fails the audit.")] = False,
    robustness: Annotated[bool, typer.Option("--robustness", help="Run SimBA and Square.")] = False,
    eps: Annotated[float | None, typer.Option("--eps", help="L-infinity budget of the "
                                              "attacks (default: the claim's).")] = None,
    query_cap: Annotated[int | None, typer.Option("--query-cap", help="Queries per attacked "
                                                  "sample (default: the claim's).")] = None,
    latency: Annotated[bool, typer.Option("--latency", help="Open-loop Poisson load.")] = False,
    rate: Annotated[float | None, typer.Option("--rate", help="Load rate (q/s).")] = None,
    duration: Annotated[float, typer.Option("--duration", help="Load duration (s).")] = 2.0,
    timeout: Annotated[float, typer.Option("--timeout", min=0.1, help="Per-request "
                                           "timeout (s); a timeout counts against "
                                           "availability.")] = 10.0,
    seed: Annotated[int | None, typer.Option("--seed", help="Probe and batch-size seed "
                                             "(default: secret, random).")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write the JSON report.")] = None,
    html: Annotated[Path | None, typer.Option("--html", help="Write the HTML report.")] = None,
    receipt_quorum: Annotated[int, typer.Option("--receipt-quorum", min=1, help="Distinct "
                                                "clients that must each show answers "
                                                "without a valid receipt.")] = 3,
    missing_tolerance: Annotated[float, typer.Option("--missing-tolerance", min=0.0, max=0.5,
                                                     help="Tolerated share of unsigned "
                                                     "answers (H0 of the missing-receipt "
                                                     "test).")] = 0.0,
    as_json: JsonOpt = False,
) -> None:
    """Audit SERVICE (claims from the ledger) or --target: is it the claimed model?

    Exits 0 on pass, 1 on fail or inconclusive (no identity test could run), 2 on bad
    input. Any service speaking mltrail's API, the Open Inference Protocol (a
    .../v2/models/NAME URL) or a JSON API described by --adapter can be audited.

    Example: mltrail audit run --target http://127.0.0.1:8000/v2/models/digits-mlp --model m.pt
    """
    from mltrail.audit.request import AuditRequest, audit_and_record

    req = AuditRequest(
        service=service, target=target, protocol=protocol, adapter=adapter, probes=probes,
        data=data, data_kind=data_kind, traffic=traffic, reference=reference, model=model,
        pubkey=pubkey, alpha=alpha, batch_size=batch_size, max_queries=max_queries,
        tolerance=tolerance, stop_on_alarm=stop_on_alarm, require_receipts=require_receipts,
        robustness=robustness, eps=eps, query_cap=query_cap, latency=latency, rate=rate,
        duration=duration, timeout=timeout, seed=seed, out=out, html=html,
        receipt_quorum=receipt_quorum, missing_tolerance=missing_tolerance)
    rep, summary = audit_and_record(
        req, open_ledger, lambda total: progress("auditing", total, show_progress(as_json)))

    def human() -> None:
        from rich.markup import escape

        from mltrail.cli.common import console

        color = {"pass": "green", "fail": "red"}.get(rep.verdict, "yellow")
        alarm = "no alarm" if rep.first_alarm_at is None else \
            f"first alarm at query {rep.first_alarm_at}"
        console.print(f"verdict: [bold {color}]{rep.verdict}[/] after {rep.queries} "
                      f"queries ({alarm})")
        for f in rep.findings:
            console.print(escape(f"  [{f.severity}] {f.check}: {f.message}"), highlight=False)
        if "ledger" in summary:
            lg = summary["ledger"]
            moved = f"-> {lg['state']}" if lg["tx_hash"] else f"stays {lg['state']}"
            console.print(escape(f"  ledger: {lg['service'][:12]} {moved}  evidence "
                                 f"{lg['report_digest'][:19]}  tx {lg['tx_hash']}"),
                          highlight=False)

    emit(summary, as_json, human)
    if rep.verdict != "pass":
        first = rep.first_failure() or next(iter(rep.findings[::-1]), None)
        what = f"{first.check}: {first.message}" if first else "no test ran"
        word = "failed" if rep.verdict == "fail" else "inconclusive"
        raise VerificationError(f"audit {word}: {what}")


@app.command("submit")
def submit_cmd(
    samples: Annotated[Path, typer.Argument(help="Clients' samples (JSON lines).")],
    auditor: Annotated[str, typer.Option("--auditor", help="URL of the auditor's inbox.")],
    as_json: JsonOpt = False,
) -> None:
    """Forward a client's sampled (input, response, receipt) triples to an auditor.

    Example: mltrail audit submit samples.jsonl --auditor http://127.0.0.1:8010
    """
    from mltrail.audit.traffic import read_submissions, submit

    res = submit(auditor, read_submissions(samples))
    emit(res, as_json, f"submitted {res['submitted']}: {res['accepted']} accepted "
         f"({len(res['unsigned'])} without a valid receipt: findings, not proof), "
         f"{len(res['rejected'])} rejected")
    if res["rejected"]:
        raise VerificationError(f"{len(res['rejected'])} submission(s) rejected: "
                                f"{res['rejected'][0]['reason']}")


@app.command("inbox")
def inbox(
    services: Annotated[list[str], typer.Argument(help="Service artefact ids to accept.")],
    folder: Annotated[Path, typer.Option("--dir", help="Where accepted submissions go.")],
    port: Annotated[int, typer.Option("--port", help="Port (0: a free one).")] = 8010,
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port_file: Annotated[Path | None, typer.Option("--port-file", help="Write the bound "
                                                   "port here.")] = None,
) -> None:
    """Serve the auditor's inbox for clients' submissions (keys from the ledger claims).

    Example: mltrail --as audrey audit inbox 0xabc... --dir inbox --port 8010
    """
    from mltrail.audit.claims import load_claims
    from mltrail.audit.service import serve_forever
    from mltrail.audit.traffic import create_inbox_app
    from mltrail.cli.serve import announce

    keys = {}
    with open_ledger() as led:
        for sid in services:
            lc = load_claims(led, sid)
            if lc.claims.public_key is None:
                raise InputError(f"service {sid} signs no receipts; its clients cannot "
                                 "submit evidence")
            keys[lc.service_id] = (lc.claims.public_key, lc.claims.model_digest)
    serve_forever(create_inbox_app(folder, keys), host, port,
                  announce(f"audit inbox for {len(keys)} service(s)", host, port_file))
