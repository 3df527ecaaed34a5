"""Classification services in other frameworks' styles, for adapter-file audits.

Written with the standard library's ``http.server`` (no FastAPI, no mltrail service
code), as someone else's server would be: a TensorFlow-Serving-style API (``POST
/v1/models/NAME:predict`` with ``{"instances": [...]}`` answering ``{"predictions":
[[p0, p1, ...], ...]}``) and a Hugging Face-style one (``POST /predict`` with
``{"inputs": [...]}`` answering one list of ``{"label": "digit-K", "score": p}`` per
input, best first). Either serves ``predict_fn`` (the genuine model or a substitute).
No receipts: such APIs sign nothing. Nothing in the auditor imports from here;
``python -m mltrail.testing.audit_foreign MODEL --style tf|hf --port-file F`` runs one.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

Predict = Callable[[np.ndarray], np.ndarray]
MAX_BODY = 4 << 20


def hf_label(k: int) -> str:
    return f"digit-{k}"


def _handler(style: str, predict: Predict, shape: tuple[int, ...]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_: Any) -> None:  # quiet
            return

        def _send(self, status: int, body: Any) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if self.path in ("/v1/models/m", "/health"):
                self._send(200, {"model_version_status": [{"state": "AVAILABLE"}]})
            else:
                self._send(404, {"error": "not found"})

        def do_POST(self) -> None:  # noqa: N802
            path = "/v1/models/m:predict" if style == "tf" else "/predict"
            n = int(self.headers.get("Content-Length") or 0)
            if self.path != path:
                self._send(404, {"error": "not found"})
                return
            if n > MAX_BODY:
                self._send(413, {"error": "too large"})
                return
            try:
                body = json.loads(self.rfile.read(n))
                rows = body["instances" if style == "tf" else "inputs"]
                x = np.asarray(rows, dtype=np.float32).reshape((len(rows), *shape))
            except (ValueError, KeyError, TypeError):
                self._send(400, {"error": "bad request"})
                return
            probs = predict(x)
            if style == "tf":
                self._send(200, {"predictions": probs.tolist()})
            else:
                out = [[{"label": hf_label(int(k)), "score": float(p[k])}
                        for k in np.argsort(-p, kind="stable")] for p in probs]
                self._send(200, out)

    return Handler


@dataclass
class ForeignServer:
    server: ThreadingHTTPServer
    thread: threading.Thread

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)

    def __enter__(self) -> ForeignServer:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def serve(style: str, predict: Predict, shape: tuple[int, ...] = (1, 8, 8),
          port: int = 0) -> ForeignServer:
    """Start a ``tf`` or ``hf`` style server on 127.0.0.1 in a daemon thread."""
    if style not in ("tf", "hf"):
        raise ValueError("style is tf or hf")
    srv = ThreadingHTTPServer(("127.0.0.1", port), _handler(style, predict, shape))
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    return ForeignServer(srv, t)


ADAPTERS = {
    "tf": {"v": 1, "name": "tf-serving digits",
           "request": {"path": "/v1/models/m:predict", "body": {"instances": "$inputs"}},
           "response": {"outputs": "/predictions", "probs": ""},
           "input_shape": [1, 8, 8], "classes": 10, "health": "/v1/models/m"},
    "hf": {"v": 1, "name": "hf-style digits",
           "request": {"path": "/predict", "body": {"inputs": "$inputs"}, "layout": "flat"},
           "response": {"outputs": "", "scores": {"pairs": "", "label": "/label",
                                                  "score": "/score"}},
           "input_shape": [1, 8, 8], "classes": 10,
           "labels": [hf_label(k) for k in range(10)]},
}


def main(argv: list[str] | None = None) -> None:
    import time

    import torch

    from mltrail._fs import atomic_write
    from mltrail.audit.models import load_model, predict

    ap = argparse.ArgumentParser(prog="python -m mltrail.testing.audit_foreign")
    ap.add_argument("model")
    ap.add_argument("--style", choices=("tf", "hf"), default="tf")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    net, card, _ = load_model(args.model)
    srv = serve(args.style, lambda b: predict(net, b), tuple(card.input_shape), args.port)
    if args.port_file:
        from pathlib import Path

        atomic_write(Path(args.port_file), f"{srv.server.server_address[1]}\n".encode())
    sys.stderr.write(f"{args.style}-style server on {srv.url}\n")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        srv.stop()


if __name__ == "__main__":
    main()
