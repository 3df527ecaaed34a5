"""The audit workflows the command line runs, as library calls.

Owns :func:`make_demo_model` (train the demo supplier's model and a cheap substitute,
write them with their cards), :func:`claims_from_target` (the claims a registrant signs
for a running service: mltrail's ``/v1/model``, or a model card for a service that speaks
the Open Inference Protocol or an adapter-described API) and :func:`load_probes` (probes
from a probe file or the user's own data). The CLI in ``mltrail.cli.audit`` is argument
parsing plus one call here or in :mod:`.runner`. It never records anything on the ledger.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from mltrail.audit import models as M
from mltrail.audit import probes as P
from mltrail.audit.claims import ServiceClaims
from mltrail.errors import InputError


def _own_robustness(net: Any, *, eps: float, query_cap: int) -> float:
    """The supplier's own robustness score (worst of SimBA and Square), as audits run it."""
    from mltrail.audit import robustness as R

    bench = P.benchmark()
    x, y = R.select_per_class(bench.x, bench.y, 3)
    results = [attack(lambda b: M.predict(net, b), x, y, eps=eps, query_cap=query_cap)
               for attack in (R.simba, R.square)]
    return float(min(r.score() for r in results))


def make_demo_model(out: Path, kind: str = "seeded", *, stego_key: str | None = None,
                    steps: int = 600) -> dict[str, Any]:
    """Train the demo model (``seeded``: publishes its seed config; ``stego``: keyed probes
    and a kit) and a cheap substitute into ``out``; what was written and measured."""
    import torch

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
            raw = bytes.fromhex(stego_key) if stego_key else secrets.token_bytes(16)
        except ValueError as exc:
            raise InputError("--stego-key must be hex") from exc
        net, kit, metrics = train_stego_model(raw, steps=steps)
        kit.visibility = {"psnr_db": metrics["psnr_db"], **detector_auc(kit)}
        kit.save(out / "kit.safetensors")
        card = stego_card(metrics)
        data.update(metrics)
        data.update(kit.visibility)
        data["kit"] = str(out / "kit.safetensors")
    elif kind == "sklearn":
        return make_sklearn_demo(out)
    else:
        raise InputError(f"unknown --kind {kind!r} (seeded, stego or sklearn)")
    data["model"] = str(out / "model.safetensors")
    data["model_digest"] = M.save_model(net, card, out / "model.safetensors")
    cheap, ccard = M.cheap_model()
    data["cheap_model"] = str(out / "cheap.safetensors")
    data["cheap_digest"] = M.save_model(cheap, ccard, out / "cheap.safetensors")
    return data


def make_sklearn_demo(out: Path) -> dict[str, Any]:
    """A scikit-learn pipeline on the digits and a cheaper substitute, written as a stock
    MLServer serves them (``mlserver/``: ``digits`` the pipeline, ``swapped`` the
    substitute, joblib files with stock model settings, on 127.0.0.1:8080) and as the
    auditor's reference cards for the pipeline (``model.skops``, ``onnx/model.onnx``;
    docs/servers.md)."""
    import json

    import joblib
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from mltrail.audit.references import write_sklearn_reference

    x, y, xt, yt = (a.reshape(len(a), -1) if a.ndim > 1 else a for a in M.digits())
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x, y)
    cheap = make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=500)
                          ).fit(x[:300], y[:300])
    acc = float((pipe.predict(xt) == yt).mean())
    card = M.ModelCard(name="digits", format="skops", classes=10, input_shape=[64],
                       claims=M.Claims(accuracy=int(acc * 100) / 100))
    (out / "onnx").mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {"accuracy": acc, "model": str(out / "model.skops"),
                            "onnx_model": str(out / "onnx" / "model.onnx")}
    data["model_digest"] = write_sklearn_reference(pipe, card, out / "model.skops")
    data["onnx_digest"] = write_sklearn_reference(
        pipe, card.model_copy(update={"format": "onnx"}), out / "onnx" / "model.onnx")
    served = out / "mlserver"
    for name, est in (("digits", pipe), ("swapped", cheap)):
        (served / name).mkdir(parents=True, exist_ok=True)
        joblib.dump(est, served / name / "model.joblib")  # MLServer's format, never read here
        (served / name / "model-settings.json").write_text(json.dumps({
            "name": name, "implementation": "mlserver_sklearn.SKLearnModel",
            "parameters": {"uri": "./model.joblib"}}, indent=2) + "\n")
    (served / "settings.json").write_text(json.dumps({
        "host": "127.0.0.1", "http_port": 8080, "grpc_port": 8081, "metrics_port": 8082,
        "parallel_workers": 0}, indent=2) + "\n")
    data["cheap_model"] = str(served / "swapped" / "model.joblib")
    data["mlserver"] = str(served)
    return data


def claims_from_target(target: str, name: str, *, reference: str | None = None,
                       availability: float | None = None, model: Path | None = None,
                       public_key: str | None = None) -> ServiceClaims:
    """The claims to sign for the service at ``target``. mltrail's own API describes
    itself (``/v1/model``); for a v2 (``.../v2/models/NAME``) or other service the
    claimed model is ``model``'s card and digest, and ``public_key`` the receipt key (if
    it signs)."""
    from mltrail.audit.client import ServiceClient
    from mltrail.audit.protocols import OIP_PATH

    if model is not None or OIP_PATH.match(target.rstrip("/")):
        if model is None:
            raise InputError("a service that does not speak mltrail's own API cannot "
                             "describe its model: give --model (the claimed model file)")
        _, card, digest = M.load_model(model)
        claims = ServiceClaims.from_card(card, model_digest=digest,
                                         public_key=public_key,
                                         endpoint=target, reference=reference)
    else:
        with ServiceClient(target) as c:
            info = c.info()
        try:
            claims = ServiceClaims(
                name=name, endpoint=target, model_digest=str(info.model_digest),
                public_key=public_key or str(info.public_key), seed_config=info.seed_config,
                reference=reference, claims=M.Claims.model_validate(info.claims or {}),
                input_shape=info.input_shape or [1, 8, 8], classes=int(info.classes or 10),
                message_class=info.message_class, max_batch=int(info.max_batch or 256))
        except (ValueError, TypeError) as exc:
            raise InputError(f"{target}/v1/model is not a usable model description: "
                             f"{str(exc).splitlines()[0]}") from exc
    claims.name = name
    if availability is not None:
        claims.claims.availability = availability
    return claims


def load_probes(probes: Path | None, data: Path | None, data_kind: str | None,
                seed: int | None, n: int | None) -> P.ProbeSet | None:
    """The probe set of an audit: a probe file, the user's own data, or None (fresh
    probes, drawn by the runner)."""
    if probes is not None and data is not None:
        raise InputError("give --probes or --data, not both")
    if data is not None:
        return P.from_data(data, data_kind, seed=seed if seed is not None
                           else secrets.randbits(64), n=n)
    if data_kind is not None:
        raise InputError("--data-kind describes --data; give the data file too")
    return P.ProbeSet.load(probes) if probes is not None else None
