"""Adversaries of the node's confidentiality: a relaying member, a stalling node, a reader
whose rights were revoked.

- ``RelayingNode``: a member's node that records every signed blob request other nodes
  send it, then replays each to another member's node, as captured and with one field
  changed (target, time, nonce, digest, signer), trying to read what only the original
  asker may read.
- ``stalling_node``: a member's node that accepts a blob request and never answers.
- ``keep_reading``: a reader who was removed (from a blob's readers or from the chain's
  roles) and keeps sending fresh, validly signed requests.

Each returns how many of its attempts a node accepted; the honest answer is 0. Written
for tests and benches; this module never decides who may read (``server.access`` does).
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import Any

import httpx
from eth_account import Account
from fastapi import FastAPI, Request
from fastapi.responses import Response

from mltrail.provenance import exchange

MUTATIONS = ("as-is", "target", "time", "nonce", "digest", "signer", "signature")


@dataclass
class RelayingNode:
    """A member's node that keeps the signed requests it receives, to replay elsewhere."""

    captured: list[tuple[str, str]] = field(default_factory=list)  # (digest, header)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/v1/blobs/{digest}")
        def _capture(digest: str, request: Request) -> Response:
            header = request.headers.get(exchange.HEADER)
            if header:
                self.captured.append((digest, header))
            return Response(status_code=404)  # "not here": the asker moves on

        return app

    def replay(self, url: str, victim: str, rng: random.Random, n: int,
               other_digest: str) -> dict[str, Any]:
        """``n`` replays of captured requests to the node at ``url`` (whose identity is
        ``victim``), each with a random mutation; returns the count the node answered 200."""
        if not self.captured:
            raise ValueError("nothing captured to replay")
        tried: dict[str, int] = dict.fromkeys(MUTATIONS, 0)
        accepted: dict[str, int] = dict.fromkeys(MUTATIONS, 0)
        with httpx.Client(timeout=10) as client:
            for _ in range(n):
                digest, header = rng.choice(self.captured)
                how = rng.choice(MUTATIONS)
                header, digest = mutate(header, digest, how, victim, other_digest, rng)
                r = client.get(f"{url.rstrip('/')}/v1/blobs/{digest}",
                               headers={exchange.HEADER: header})
                tried[how] += 1
                accepted[how] += r.status_code == 200
        return {"attempts": n, "accepted": sum(accepted.values()), "tried": tried,
                "accepted_by_mutation": accepted}


def mutate(header: str, digest: str, how: str, victim: str, other_digest: str,
           rng: random.Random) -> tuple[str, str]:
    """One field of a captured ``addr:ts:nonce:target:sig`` request changed."""
    addr, ts, nonce, target, sig = header.split(":")
    if how == "target":
        target = victim
    elif how == "time":
        ts = str(int(ts) + rng.choice((-2, -1, 1, 2, 60)))
    elif how == "nonce":
        nonce = rng.randbytes(16).hex()
    elif how == "digest":
        digest = other_digest
    elif how == "signer":
        addr = Account.create().address
    elif how == "signature":
        raw = bytearray(bytes.fromhex(sig.removeprefix("0x")))
        raw[rng.randrange(64)] ^= 1 << rng.randrange(8)
        sig = "0x" + raw.hex()
    return f"{addr}:{ts}:{nonce}:{target}:{sig}", digest


def stalling_node(seconds: float = 60.0) -> FastAPI:
    """A member's node that takes every blob request and answers nothing for ``seconds``."""
    app = FastAPI()

    @app.get("/v1/blobs/{digest}")
    async def _stall(digest: str) -> Response:
        await asyncio.sleep(seconds)
        return Response(status_code=404)

    return app


def keep_reading(signer: Any, url: str, target: str, digest: str, n: int) -> int:
    """``n`` fresh requests, each validly signed by ``signer`` (an object with
    ``.account``) for the node of ``target``: how many got the bytes."""
    got = 0
    with httpx.Client(timeout=10) as client:
        for _ in range(n):
            hdr = exchange.sign_request(signer, digest, target)
            r = client.get(f"{url.rstrip('/')}/v1/blobs/{digest}",
                           headers={exchange.HEADER: hdr})
            got += r.status_code == 200
    return got
