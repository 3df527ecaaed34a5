"""A home with a few artefacts served by a real node on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from nodekit import seed
from testkit import PASSWORD, make_home


@dataclass
class Served:
    url: str
    home: object
    tokens: dict[str, str]
    ids: dict[str, str]
    files: dict[str, Path]
    app: object = None


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[Served]:
    from mltrail.audit.service import serve_in_thread
    from mltrail.server.app import create_app
    from mltrail.server.tokens import TokenStore

    tmp = tmp_path_factory.mktemp("node")
    home = make_home(tmp)
    ids, files = seed(home, tmp)
    store = TokenStore(home)
    tokens = {"op": store.create("op", "operator")[1],
              "viewer": store.create("viewer", "operator", read_only=True)[1],
              "dev": store.create("dev", "dev")[1]}
    app = create_app(home, password=PASSWORD)
    with serve_in_thread(app) as srv:
        yield Served(srv.url, home, tokens, ids, files, app)
    app.state.node.close()
