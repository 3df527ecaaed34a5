"""`mltrail serve-model` and `mltrail serve-proxy`: thin shells over mltrail.audit."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from mltrail.errors import InputError

PortOpt = Annotated[int, typer.Option("--port", help="Port on --host (0: a free one).")]
HostOpt = Annotated[str, typer.Option("--host", help="Interface to listen on.")]
PortFileOpt = Annotated[Path | None, typer.Option("--port-file", help="Write the bound port "
                                                  "here once listening is possible.")]


def announce(what: str, host: str, port_file: Path | None) -> Callable[[int], None]:
    def bound(port: int) -> None:
        if port_file is not None:
            from mltrail._fs import atomic_write

            atomic_write(port_file, f"{port}\n".encode())
        sys.stderr.write(f"{what} on http://{host}:{port}\n")
        sys.stderr.flush()
    return bound


def serve_model(
    model: Annotated[Path, typer.Argument(help="Model file (.safetensors with a .json card).")],
    port: PortOpt = 8000,
    host: HostOpt = "127.0.0.1",
    key: Annotated[Path | None, typer.Option("--key", help="Ed25519 signing key (PEM); "
                                             "created if missing, ephemeral if omitted.")] = None,
    max_batch: Annotated[int, typer.Option("--max-batch", min=1, help="Most inputs per "
                                           "request.")] = 256,
    threads: Annotated[int, typer.Option("--threads", min=1, help="Torch threads.")] = 1,
    port_file: PortFileOpt = None,
) -> None:
    """Serve MODEL as a classification API with signed receipts, in two protocols.

    mltrail's own API (GET /v1/model, POST /v1/classify) and the Open Inference Protocol
    (KServe / Triton v2: GET /v2/models/NAME, POST /v2/models/NAME/infer, NAME being the
    card's name; the receipt travels in the response parameters).

    Example: mltrail serve-model model.safetensors --port 8000 --key supplier.pem
    """
    import torch

    from mltrail.audit.models import load_model
    from mltrail.audit.receipts import load_or_create_key
    from mltrail.audit.service import create_app, serve_forever

    torch.set_num_threads(threads)
    net, card, digest = load_model(model)
    app = create_app(net, card, digest, load_or_create_key(key), max_batch=max_batch)
    serve_forever(app, host, port, announce(f"serving {card.name} {digest[:19]}", host,
                                             port_file))


def serve_proxy(
    upstream: Annotated[str, typer.Option("--upstream", help="The supplier's URL.")],
    mode: Annotated[str, typer.Option("--mode", help="honest | substitute | mix=F | "
                                      "probe-aware")] = "honest",
    receipts: Annotated[str | None, typer.Option("--receipts", help="relay | drop | forge | "
                                                 "replay (default: relay if honest, "
                                                 "else drop)")] = None,
    cheap_model: Annotated[Path | None, typer.Option("--cheap-model", help="Substitute model "
                                                     "file (default: train a small one).")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of mix=F's choices.")] = None,
    port: PortOpt = 8001,
    host: HostOpt = "127.0.0.1",
    port_file: PortFileOpt = None,
) -> None:
    """Run a provider in front of --upstream that may cheat (for tests and demos).

    Example: mltrail serve-proxy --upstream http://127.0.0.1:8000 --mode mix=0.1 --port 8001
    """
    import numpy as np
    import torch

    from mltrail.audit.models import cheap_model as train_cheap
    from mltrail.audit.models import digits, load_model, predict
    from mltrail.audit.service import serve_forever
    from mltrail.testing.providers import RECEIPT_MODES, KnownSet, ProxyMode, create_proxy_app

    torch.set_num_threads(1)
    pmode = ProxyMode.parse(mode)
    if receipts is not None and receipts not in RECEIPT_MODES:
        raise InputError(f"unknown receipts mode {receipts!r} ({', '.join(RECEIPT_MODES)})")
    net = load_model(cheap_model)[0] if cheap_model else train_cheap()[0]
    known = None
    if pmode.kind == "probe-aware":
        x_tr, _, x_te, _ = digits()
        known = KnownSet.of(np.concatenate([x_tr, x_te]))
    app = create_proxy_app(upstream, pmode, lambda b: predict(net, b),
                           receipts=receipts, known=known, seed=seed)  # type: ignore[arg-type]
    serve_forever(app, host, port, announce(f"proxy ({mode}) for {upstream}", host, port_file))


def install(app: typer.Typer) -> None:
    """Add the serve commands to the top-level app."""
    app.command("serve-model")(serve_model)
    app.command("serve-proxy")(serve_proxy)
