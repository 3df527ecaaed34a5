"""Session-wide models and loopback services for the audit tests (trained once, fast)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from mltrail.audit import models as M
from mltrail.audit.receipts import load_or_create_key, public_key_b64
from mltrail.audit.service import RunningServer, create_app, serve_in_thread
from mltrail.audit.stego import StegoKit, stego_card, train_stego_model
from mltrail.testing.providers import KnownSet, ProxyMode, create_proxy_app

SEED_CONFIG: dict[str, Any] = {"seed": 1, "arch": {"type": "mlp", "hidden": [64]}, "epochs": 2}


@dataclass
class Served:
    path: Path
    model: torch.nn.Module
    card: M.ModelCard
    digest: str
    server: RunningServer
    pubkey: str

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="session", autouse=True)
def _one_thread() -> Iterator[None]:
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session")
def seeded_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mltrail.reference import train_seeded

    net, _ = train_seeded(SEED_CONFIG)
    net.eval()
    acc = M.accuracy_of(net, *M.digits()[2:])
    card = M.ModelCard(name="digits-mlp", arch=SEED_CONFIG["arch"], classes=10,
                       seed_config=SEED_CONFIG,
                       claims=M.Claims(accuracy=round(int(acc * 100) / 100, 2),
                                       latency=M.LatencyClaim(rate_qps=40, p95_ms=2000)))
    path = tmp_path_factory.mktemp("seeded") / "model.safetensors"
    M.save_model(net, card, path)
    return path


@pytest.fixture(scope="session")
def cheap() -> torch.nn.Module:
    return M.cheap_model()[0]


def _serve(path: Path) -> Served:
    net, card, digest = M.load_model(path)
    key = load_or_create_key(None)
    srv = serve_in_thread(create_app(net, card, digest, key))
    return Served(path, net, card, digest, srv, public_key_b64(key.public_key()))


@pytest.fixture(scope="session")
def supplier(seeded_path: Path) -> Iterator[Served]:
    s = _serve(seeded_path)
    yield s
    s.server.stop()


@pytest.fixture(scope="session")
def stego(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, StegoKit, dict[str, float]]:
    net, kit, metrics = train_stego_model(b"audit-test-key", steps=400)
    path = tmp_path_factory.mktemp("stego") / "model.safetensors"
    M.save_model(net, stego_card(metrics), path)
    return path, kit, metrics


@pytest.fixture(scope="session")
def stego_supplier(stego: tuple[Path, StegoKit, dict[str, float]]) -> Iterator[Served]:
    s = _serve(stego[0])
    yield s
    s.server.stop()


@pytest.fixture(scope="session")
def public_digits() -> KnownSet:
    x_tr, _, x_te, _ = M.digits()
    return KnownSet.of(np.concatenate([x_tr, x_te]))


@pytest.fixture()
def make_proxy(cheap: torch.nn.Module, public_digits: KnownSet) -> Iterator[Any]:
    started: list[RunningServer] = []

    def make(upstream: str, mode: str, receipts: str | None = None, seed: int = 3) -> str:
        app = create_proxy_app(upstream, ProxyMode.parse(mode), lambda b: M.predict(cheap, b),
                               receipts=receipts, known=public_digits,  # type: ignore[arg-type]
                               seed=seed)
        srv = serve_in_thread(app)
        started.append(srv)
        return srv.url

    yield make
    for s in started:
        s.stop()


@pytest.fixture()
def start_cheat(seeded_path: Path, cheap: torch.nn.Module) -> Iterator[Any]:
    """Start a cheating supplier (mltrail.testing.audit_*) on loopback, in this process."""
    from mltrail.testing.audit_base import Cheat, build_app

    started: list[RunningServer] = []
    net, card, digest = M.load_model(seeded_path)
    key = load_or_create_key(None)

    def start(cheat: Cheat, card_update: dict[str, Any] | None = None) -> tuple[str, str]:
        c = card.model_copy(update=card_update or {})
        srv = serve_in_thread(build_app(cheat, net, c, digest, key, cheap))
        started.append(srv)
        return srv.url, public_key_b64(key.public_key())

    yield start
    for s in started:
        s.stop()


@pytest.fixture()
def ledger_home(tmp_path: Path) -> Any:
    from mltrail.identity import create_identity
    from mltrail.ledger.client import Ledger
    from mltrail.ledger.setup import init_home

    home = init_home(tmp_path / ".mltrail", password="pw")
    admin = Ledger.open(home, identity="admin", password="pw")
    for name, role in (("oscar", "operator"), ("audrey", "auditor")):
        admin.grant_role(create_identity(home, name, password="pw"), role)
    admin.close()
    return home
