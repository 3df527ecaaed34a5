"""A v2 (Open Inference Protocol) server that behaves as a stock MLServer scikit-learn
runtime does, honest or not, for the audit tests and ``bench/stock_servers.py``.

Written with the standard library's ``http.server``, as someone else's server would be.
Its metadata declares no tensors (``"inputs": [], "outputs": []``); a request that
names no outputs gets ``predict`` (INT64 ``[n, 1]``, the labels) only; naming
``predict_proba`` (and/or ``predict``) gets those. Modes:

* ``honest`` — every answer from the genuine model.
* ``labelswap`` — "Customers who name ``predict_proba`` can check probabilities;
  those who take my default labels cannot. I answer the default from the cheap model
  and every request that names outputs from the genuine one."

Nothing in the auditor imports from here.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

Proba = Callable[[np.ndarray], np.ndarray]   # [n, features] -> [n, classes]
MODES = ("honest", "labelswap")


@dataclass
class StockServer:
    url: str
    server: ThreadingHTTPServer

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _handler(name: str, genuine: Proba, cheap: Proba, mode: str
             ) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_: Any) -> None:
            return

        def _send(self, status: int, body: Any) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if self.path == f"/v2/models/{name}":
                self._send(200, {"name": name, "versions": [], "platform": "",
                                 "inputs": [], "outputs": [], "parameters": {}})
            else:
                self._send(404, {"error": "not found"})

        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            if self.path != f"/v2/models/{name}/infer":
                self._send(404, {"error": "not found"})
                return
            t = body["inputs"][0]
            x = np.asarray(t["data"], dtype=np.float32).reshape(t["shape"][0], -1)
            wanted = [o["name"] for o in body.get("outputs") or []] or ["predict"]
            model = cheap if mode == "labelswap" and not body.get("outputs") else genuine
            p = model(x)
            outs = []
            for o in wanted:
                if o == "predict":
                    outs.append({"name": o, "datatype": "INT64", "shape": [len(x), 1],
                                 "data": [int(k) for k in p.argmax(1)]})
                elif o == "predict_proba":
                    outs.append({"name": o, "datatype": "FP64", "shape": list(p.shape),
                                 "data": [float(v) for v in p.ravel()]})
                else:
                    self._send(400, {"error": f"unknown output {o}"})
                    return
            self._send(200, {"model_name": name, "id": body.get("id"), "parameters": {},
                             "outputs": outs})

    return Handler


def serve(name: str, genuine: Proba, cheap: Proba, mode: str = "honest") -> StockServer:
    """Start the server on 127.0.0.1 (a free port) in a daemon thread."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _handler(name, genuine, cheap, mode))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return StockServer(f"http://127.0.0.1:{srv.server_address[1]}", srv)
