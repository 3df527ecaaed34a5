"""Running the node: uvicorn on a socket, in one process or several workers.

Owns sockets and processes only. Workers each build their own app from
``$MLTRAIL_HOME`` (and ``$MLTRAIL_PASSWORD`` for writes); SQLite in WAL mode lets them
read the one index side by side, and the embedded chain's lock orders their writes.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn

from mltrail.config import ENV_HOME, Home

if TYPE_CHECKING:
    from fastapi import FastAPI



def _config(app: FastAPI | str, **extra: Any) -> uvicorn.Config:
    """Quiet uvicorn settings: warnings only, no access log, no lifespan events."""
    return uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", **extra)


def _socket(host: str, port: int) -> socket.socket:
    # TCP_NODELAY: without it every response may wait ~40 ms for the client's delayed ACK
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def app_from_env() -> FastAPI:
    """The app factory each worker process calls."""
    from mltrail.config import ENV_PASSWORD
    from mltrail.server.app import create_app

    return create_app(Home(os.environ[ENV_HOME]), password=os.environ.get(ENV_PASSWORD))


def serve(app: FastAPI, home: Home, host: str, port: int, workers: int = 1,
          on_bound: Callable[[int], None] | None = None) -> None:
    """Serve in the foreground until interrupted; port 0 picks a free one."""
    sock = _socket(host, port)
    if on_bound is not None:
        on_bound(sock.getsockname()[1])
    if workers <= 1:
        uvicorn.Server(_config(app)).run(sockets=[sock])
        return
    from uvicorn.supervisors.multiprocess import Multiprocess

    os.environ[ENV_HOME] = str(home.root)
    config = _config("mltrail.server.run:app_from_env", factory=True, workers=workers)
    Multiprocess(config, sockets=[sock]).run()


def serve_node(home: Home, *, host: str = "127.0.0.1", port: int = 8470, workers: int = 1,
               password: Callable[[], str] | str | None = None, advertise: str | None = None,
               port_file: Path | None = None,
               notify: Callable[[str], None] = lambda line: None,
               identity: str | None = None) -> None:
    """Build ``home``'s node app, read as ``identity`` (default: the home's), and serve it
    until interrupted.

    ``advertise`` publishes that URL on chain as ``identity``'s node first; ``port_file``
    gets the bound port once listening is possible; ``notify`` hears one line per step.
    Several workers read the password from ``$MLTRAIL_PASSWORD`` (set here from
    ``password`` when it is not already)."""
    from mltrail._fs import atomic_write
    from mltrail.config import ENV_PASSWORD
    from mltrail.provenance.exchange import publish_url
    from mltrail.server.app import create_app

    if workers > 1 and not os.environ.get(ENV_PASSWORD) and password is not None:
        os.environ[ENV_PASSWORD] = password() if callable(password) else password
    app = create_app(home, password=password, identity=identity)
    try:
        if advertise:
            node = app.state.node
            res = publish_url(node.reader, advertise)
            tx = f" (tx {res['tx_hash']})" if res.get("tx_hash") else ""
            notify(f"published {advertise} as {node.reader.identity}'s node{tx}")

        def bound(p: int) -> None:
            if port_file is not None:
                atomic_write(port_file, f"{p}\n".encode())
            notify(f"mltrail node for {home.root} on http://{host}:{p}/ (API docs: /docs)")

        serve(app, home, host, port, workers, bound)
    finally:
        app.state.node.close()
