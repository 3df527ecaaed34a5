"""Oracle network benchmark: gas per round per oracle, rounds per minute, how often
consensus holds against liars, and the rates of the dishonest oracles and providers
(lazy, withholding, colluding into a tie, split brain). Prints JSON.

Protocol rounds (request, n commits, n reveals, finalise) run in one process with
findings fixed in advance, so the numbers are the ledger's, not the audits': on the
embedded chain and on anvil, for committees of 3, 5 and 9 oracles. Gas comes from the
receipts. The attack table draws honest measurements with noise and f liars (lone or
colluding, each lie drawn at random) over many seeds and reports how often the contract
(its real median and tolerance code on the embedded EVM) keeps the honest verdict and
slashes every liar. ``withholding`` and ``tie`` run rounds on the embedded EVM with
absent oracles; ``lazy_guess`` replays a stale accuracy against fresh shared probes;
``split_brain`` audits split-brain providers (mltrail.testing.oracle_splitbrain and the
audit memoriser) with the real oracle audit (shared + private probes) over HTTP.

    python bench/oracle.py [--rounds 10] [--seeds 40] [--skip-anvil] [--skip-attacks]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "oracle")]

from netkit import build_net, play_round, register_service  # noqa: E402

from mltrail.oracle import market as M  # noqa: E402
from testkit import PASSWORD, anvil_binary, free_port  # noqa: E402

MASK = M.metrics_mask(["agreement", "accuracy", "latency", "availability"])
HONEST = {"agreement": 1.0, "accuracy": 0.93, "robustness": 0.0, "p99_latency": 12.0,
          "availability": 1.0}


def _values(metrics: dict[str, float]) -> list[int]:
    return [M.to_units(n, metrics[n]) if MASK >> i & 1 else 0 for i, n in enumerate(M.METRICS)]


def _round(client: M.Market, oracles: list[M.Market], sid: str,
           findings: list[tuple[list[int], int] | None]) -> dict[str, Any]:
    """One full round (tests/oracle/netkit.play_round), timed."""
    t0 = time.perf_counter()
    gas = play_round(client, oracles, sid, findings, MASK)
    return {"gas": gas, "seconds": time.perf_counter() - t0, "round": gas["round"]}


def protocol(tmp: Path, rpc: str | None, sizes: list[int], rounds: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for n in sizes:
        net = build_net(tmp / f"n{n}", rpc, n_oracles=n, stake=10_000,
                        params={"commit_window": 1000, "reveal_window": 1000,
                                "min_stake": 100, "slash_amount": 50, "quorum": (n + 1) // 2})
        sid = register_service(net, "http://127.0.0.1:9/", "svc")
        client = M.Market.open(net.home, identity="client", password=PASSWORD)
        oracles = [M.Market.open(net.home, identity=o, password=PASSWORD)
                   for o in [f"oracle{i}" for i in range(1, n + 1)]]
        honest = [(_values(HONEST), M.PASS)] * n
        runs = [_round(client, oracles, sid, honest) for _ in range(rounds)]
        per_oracle = [(sum(r["gas"]["commit"]) + sum(r["gas"]["reveal"]) +
                       r["gas"]["finalize"] + r["gas"]["request"]) / n for r in runs]
        secs = [r["seconds"] for r in runs]
        last = runs[-1]["gas"]
        out[f"n={n}"] = {
            "gas_request": last["request"], "gas_commit_mean": statistics.mean(last["commit"]),
            "gas_reveal_mean": statistics.mean(last["reveal"]), "gas_finalize": last["finalize"],
            "gas_per_round": int(per_oracle[-1] * n), "gas_per_round_per_oracle":
            int(statistics.mean(per_oracle)), "rounds": rounds,
            "transactions_per_round": 2 + 2 * n,
            "rounds_per_minute": round(60.0 / statistics.median(secs), 1)}
        for m in [client, *oracles]:
            m.close()
    return out


def _lie(rng: random.Random) -> tuple[list[int], int]:
    vals = dict(HONEST)
    vals["agreement"] = rng.uniform(0.0, 0.9)
    vals["accuracy"] = rng.uniform(0.0, 0.9)
    return _values(vals), M.FAIL


def attacks(tmp: Path, seeds: int) -> dict[str, Any]:
    """Lone and colluding liars against n = 5 and 7, many seeds; the contract decides."""
    from mltrail.oracle.market import Market

    table: dict[str, Any] = {}
    for n, f in ((5, 1), (5, 2), (7, 3), (5, 3)):
        net = build_net(tmp / f"a{n}{f}", None, n_oracles=n, stake=100_000,
                        params={"commit_window": 1000, "reveal_window": 1000,
                                "min_stake": 100, "slash_amount": 1, "quorum": (n + 1) // 2})
        sid = register_service(net, "http://127.0.0.1:9/", "svc")
        client = Market.open(net.home, identity="client", password=PASSWORD)
        with Market.open(net.home, password=PASSWORD) as admin:
            admin.transfer(net.addresses["client"], 100 * seeds)
        oracles = [Market.open(net.home, identity=o, password=PASSWORD)
                   for o in [f"oracle{i}" for i in range(1, n + 1)]]
        kept = slashed_all = honest_paid = 0
        for seed in range(seeds):
            rng = random.Random(seed)
            colluding = seed % 2 == 1
            honest = []
            for _ in range(n - f):  # honest oracles measure latency with noise
                v = dict(HONEST)
                v["p99_latency"] = HONEST["p99_latency"] * rng.uniform(0.7, 1.5)
                honest.append((_values(v), M.PASS))
            lie = _lie(rng)
            liars = [lie if colluding else _lie(rng) for _ in range(f)]
            order = honest + liars
            rng.shuffle(order)
            r = _round(client, oracles, sid, order)
            res = oracles[0].result(r["round"])
            liar_addrs = {oracles[i].me for i, x in enumerate(order) if x[1] == M.FAIL}
            kept += res.round.verdict == "pass"
            slashed_all += liar_addrs <= set(res.slashed)
            honest_paid += len(res.paid) == n - f
        table[f"n={n},f={f}"] = {"bound_holds": n >= 2 * f + 1, "seeds": seeds,
                                 "honest_verdict_kept_rate": kept / seeds,
                                 "all_liars_slashed_rate": slashed_all / seeds,
                                 "all_honest_paid_rate": honest_paid / seeds}
        for m in [client, *oracles]:
            m.close()
    return table


def lazy_guess(seeds: int, queries: int = 64, tols: tuple[float, ...] = (0.02, 0.01)
               ) -> dict[str, Any]:
    """A lazy oracle re-reports the previous round's accuracy instead of auditing (or the
    long-run mean it learned from past medians): how often is it within tolerance of this
    round's median (the shared probes of a fresh seed, same honest service)?"""
    import numpy as np
    import torch

    from mltrail.audit import models as AM
    from mltrail.audit import probes as P

    torch.set_num_threads(1)
    net = AM.train_plain({"type": "mlp", "hidden": [32], "classes": 10}, steps=150, seed=1)
    accs = []
    for seed in range(seeds):
        pr = P.benchmark(queries, seed=seed)
        accs.append(float((AM.predict(net, pr.x).argmax(1) == pr.y).mean()))
    a = np.array(accs)
    mean = np.round(a.mean() * queries) / queries  # the best constant guess, in whole probes
    out: dict[str, Any] = {"seeds": seeds, "queries": queries,
                           "accuracy_mean": float(a.mean()), "accuracy_sd": float(a.std())}
    for tol in tols:
        stale = float((np.abs(a[1:] - a[:-1]) <= tol + 1e-12).mean())
        const = float((np.abs(a - mean) <= tol + 1e-12).mean())
        out[f"tol={tol}"] = {"stale_guess_within_tolerance_rate": stale,
                             "mean_guess_within_tolerance_rate": const}
    return out


def _committee(tmp: Path, n: int, seeds: int) -> tuple[Any, str, M.Market, list[M.Market]]:
    net = build_net(tmp, None, n_oracles=n, stake=100_000,
                    params={"commit_window": 12, "reveal_window": 12, "min_stake": 100,
                            "slash_amount": 1, "quorum": (n + 1) // 2})
    sid = register_service(net, "http://127.0.0.1:9/", "svc")
    with M.Market.open(net.home, password=PASSWORD) as admin:
        admin.transfer(net.addresses["client"], 200 * seeds)
    client = M.Market.open(net.home, identity="client", password=PASSWORD)
    oracles = [M.Market.open(net.home, identity=f"oracle{i}", password=PASSWORD)
               for i in range(1, n + 1)]
    return net, sid, client, oracles


def withholding(tmp: Path, seeds: int) -> dict[str, Any]:
    """n = 5; one oracle withholds (never commits, or commits and never reveals) and
    0..2 others are away, so some rounds reach consensus and some do not."""
    net, sid, client, oracles = _committee(tmp, 5, seeds)
    honest = (_values(HONEST), M.PASS)
    slashed = consensus = 0
    by_kind = {"no_commit": [0, 0], "no_reveal": [0, 0]}
    for seed in range(seeds):
        rng = random.Random(seed)
        kind = "no_commit" if seed % 2 == 0 else "no_reveal"
        away = rng.randint(0, 2)
        order = list(range(5))
        rng.shuffle(order)
        w, gone = order[0], set(order[1:1 + away])
        findings: list[tuple[list[int], int] | None] = [
            None if i in gone or (i == w and kind == "no_commit") else honest for i in range(5)]
        if kind == "no_reveal":  # commits like everyone, then keeps its reveal back
            rid, _ = client.request(sid, MASK, 50)
            salt = os.urandom(32)
            oracles[w].commit(rid, M.commitment(rid, honest[0], honest[1], b"\x01" * 32,
                                                b"\x02" * 32, salt, oracles[w].me))
            findings[w] = None
            g = play_round(client, oracles, sid, findings, MASK, rid=rid)
        else:
            g = play_round(client, oracles, sid, findings, MASK)
        res = client.result(int(g["round"]))
        hit = oracles[w].me in res.slashed
        slashed += hit
        consensus += res.round.status == "consensus"
        by_kind[kind][0] += hit
        by_kind[kind][1] += 1
    for m in [client, *oracles]:
        m.close()
    return {"n": 5, "seeds": seeds, "withholder_slashed_rate": slashed / seeds,
            "rounds_with_consensus_rate": consensus / seeds,
            **{f"{k}_slashed_rate": v[0] / max(1, v[1]) for k, v in by_kind.items()}}


def tie(tmp: Path, seeds: int) -> dict[str, Any]:
    """n = 5: two colluders vote fail, two honest oracles pass, one honest oracle is away:
    a tie. It escalates to a round needing five reveals; the absent oracle comes back in
    it with probability 1/2 (seeded)."""
    net, sid, client, oracles = _committee(tmp, 5, seeds)
    honest = (_values(HONEST), M.PASS)
    lie = _lie(random.Random(0))
    esc = kept = colluders_slashed = refunded = absent_slashed = 0
    for seed in range(seeds):
        rng = random.Random(seed)
        roles = ["c", "c", "h", "h", "a"]
        rng.shuffle(roles)
        f1 = [lie if r == "c" else honest if r == "h" else None for r in roles]
        g = play_round(client, oracles, sid, f1, MASK)
        res = client.result(int(g["round"]))
        absent = oracles[roles.index("a")].me
        absent_slashed += absent in res.slashed
        if res.round.status != "escalated" or res.escalated_to is None:
            refunded += res.refunded == 50
            continue
        esc += 1
        back = rng.random() < 0.5
        f2 = [lie if r == "c" else honest if r == "h" or back else None for r in roles]
        g2 = play_round(client, oracles, sid, f2, MASK, rid=res.escalated_to)
        res2 = client.result(int(g2["round"]))
        kept += res2.round.verdict == "pass"
        refunded += res2.refunded == 50
        colluders_slashed += all(oracles[i].me in res2.slashed
                                 for i, r in enumerate(roles) if r == "c")
    for m in [client, *oracles]:
        m.close()
    return {"n": 5, "seeds": seeds, "escalated_rate": esc / seeds,
            "absent_slashed_in_tied_round_rate": absent_slashed / seeds,
            "honest_verdict_after_escalation_rate": kept / seeds,
            "colluders_slashed_rate": colluders_slashed / seeds,
            "fee_refunded_rate": refunded / seeds}


def split_brain(seeds: int, queries: int = 64) -> dict[str, Any]:
    """Split-brain providers (oracles get the genuine model, everything else a cheap
    one) audited by one honest oracle per seed, with the daemon's own audit: shared
    probes from the round seed plus private probes from a secret salt."""
    import torch

    from mltrail.audit import models as AM
    from mltrail.audit.receipts import load_or_create_key
    from mltrail.audit.service import create_app, serve_in_thread
    from mltrail.audit.workflows import claims_from_target
    from mltrail.oracle import probes as OP
    from mltrail.oracle.metrics import AuditOptions, measure
    from mltrail.provenance.digest import digest_bytes
    from mltrail.testing.audit_base import Cheat, build_app
    from mltrail.testing.audit_memoriser import Memoriser
    from mltrail.testing.oracle_splitbrain import ChainWatcher, FreshSpotter

    torch.set_num_threads(1)
    arch = {"type": "mlp", "hidden": [32], "classes": 10}
    model = AM.train_plain(arch, steps=150, seed=1)
    card = AM.ModelCard(name="genuine", arch=arch, classes=10)
    acc = AM.accuracy_of(model, *AM.digits()[2:])
    card = card.model_copy(update={"claims": AM.Claims(accuracy=round(int(acc * 100) / 100,
                                                                        2))})
    cheap, _ = AM.cheap_model(seed=7)
    key = load_or_create_key(None)
    digest = digest_bytes(b"genuine")
    ref = serve_in_thread(create_app(model, card, digest, key))
    opts = AuditOptions(reference_url=ref.url, queries=queries)
    wanted = ["agreement", "accuracy", "availability"]
    cheats: list[Cheat] = [Cheat(), Memoriser(), ChainWatcher(), FreshSpotter()]
    out: dict[str, Any] = {"seeds": seeds, "queries": queries,
                           "private_queries": OP.PRIVATE_QUERIES}
    for cheat in cheats:
        srv = serve_in_thread(build_app(cheat, model, card, digest, key, cheap))
        claims = claims_from_target(srv.url, cheat.name)
        shared_fail = private_fail = fail = 0
        try:
            for seed in range(seeds):
                round_seed = 10_000 + seed
                if isinstance(cheat, ChainWatcher):
                    cheat.watch(round_seed, queries)
                salt = random.Random(seed).randbytes(32)
                m = measure(claims, wanted, round_seed, opts, private=OP.draw(salt, round_seed))
                shared_fail += m.report.get("verdict") == "fail"  # public: at best inconclusive
                private_fail += m.report.get("private_probes", {}).get("verdict") != "pass"
                fail += m.verdict == "fail"
        finally:
            srv.stop()
        key_name = "honest_false_alarm" if cheat.name == "honest" else cheat.name
        out[key_name] = {"caught_rate": fail / seeds,
                         "caught_by_shared_probes_rate": shared_fail / seeds,
                         "caught_by_private_probes_rate": private_fail / seeds}
    ref.stop()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--seeds", type=int, default=40)
    ap.add_argument("--split-seeds", type=int, default=20)
    ap.add_argument("--sizes", default="3,5,9")
    ap.add_argument("--skip-anvil", action="store_true")
    ap.add_argument("--skip-attacks", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("MLTRAIL_PASSWORD", PASSWORD)
    sizes = [int(s) for s in args.sizes.split(",")]
    out: dict[str, Any] = {"bench": "oracle", "date": time.strftime("%Y-%m-%d %H:%M UTC",
                                                                    time.gmtime()),
                           "command": "python bench/oracle.py " + " ".join(sys.argv[1:])}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        out["embedded"] = protocol(tmp / "emb", None, sizes, args.rounds)
        binary = anvil_binary()
        if binary and not args.skip_anvil:
            port = free_port()
            proc = subprocess.Popen([binary, "--port", str(port), "--silent"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                for _ in range(100):
                    try:
                        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                        break
                    except OSError:
                        time.sleep(0.1)
                out["anvil"] = protocol(tmp / "anvil", f"http://127.0.0.1:{port}", sizes,
                                        args.rounds)
            finally:
                proc.terminate()
                proc.wait(10)
        if not args.skip_attacks:
            out["lazy_guess"] = lazy_guess(max(2, 5 * args.seeds))
            out["attacks"] = attacks(tmp / "att", args.seeds)
            out["withholding"] = withholding(tmp / "wh", args.seeds)
            out["tie"] = tie(tmp / "tie", args.seeds)
            out["split_brain"] = split_brain(args.split_seeds)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
