"""Provenance capture benchmark. Prints JSON.

- hashing throughput on one 1 GB file, as a ratio to ``sha256sum`` on the same file in
  the same run (page cache warm for both; best of 3, alternating);
- a 1 GB folder of 1,000 files: parallel vs one-thread hashing, and ``mltrail verify``;
- ``mltrail run`` overhead on a no-op command (library call and whole CLI);
- Merkle batches: records per anchor transaction, proof verification time;
- detection rates of the tampers and statement forgeries in
  ``mltrail.testing.provenance_tamper`` over ``--seeds`` seeds each.

Files are generated in a temporary folder and removed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from mltrail.errors import MltrailError  # noqa: E402
from mltrail.ledger.client import Ledger  # noqa: E402
from mltrail.provenance import anchor, batch, digest  # noqa: E402
from mltrail.provenance.artefacts import register_path  # noqa: E402
from mltrail.provenance.capture import run_command  # noqa: E402
from mltrail.provenance.verify import verify_envelope, verify_path  # noqa: E402
from mltrail.testing.provenance_tamper import BENIGN, FORGERIES, TAMPERS  # noqa: E402
from testkit import PASSWORD, make_home  # noqa: E402

BLOCK = 16 << 20


def _write(path: Path, size: int, seed: int) -> None:
    block = random.Random(seed).randbytes(min(BLOCK, size))
    with path.open("wb") as fh:
        left = size
        while left:
            n = min(left, len(block))
            fh.write(block[:n])
            left -= n


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _sha256sum(paths: list[Path]) -> None:
    subprocess.run(["sha256sum", *map(str, paths)], check=True, stdout=subprocess.DEVNULL)


def hashing(tmp: Path, size: int) -> dict[str, float]:
    f = tmp / "one.bin"
    _write(f, size, 1)
    _sha256sum([f])  # warm the page cache
    ours, theirs = [], []
    for _ in range(3):
        theirs.append(_timed(lambda: _sha256sum([f])))
        ours.append(_timed(lambda: digest.digest_file(f)))
    f.unlink()
    return {"file_bytes": size, "sha256sum_s": round(min(theirs), 3),
            "mltrail_s": round(min(ours), 3),
            "mltrail_mb_per_s": round(size / min(ours) / 1e6, 1),
            "ratio_to_sha256sum": round(min(theirs) / min(ours), 3)}


def folder(tmp: Path, size: int, files: int, led: Ledger) -> dict[str, float]:
    root = tmp / "folder"
    root.mkdir()
    each = size // files
    for i in range(files):
        _write(root / f"part-{i:04d}.bin", each, i)
    paths = sorted(root.iterdir())
    _sha256sum(paths)
    par = min(_timed(lambda: digest.dir_manifest(root)) for _ in range(2))
    seq = min(_timed(lambda: [digest.digest_file(p) for p in paths]) for _ in range(2))
    sums = min(_timed(lambda: _sha256sum(paths)) for _ in range(2))
    reg, _ = register_path(led, root, "dataset")
    verify_s = min(_timed(lambda: verify_path(led, root, reg.artefact_id)) for _ in range(2))
    _flip(paths[len(paths) // 2])
    bad = verify_path(led, root, reg.artefact_id)
    shutil.rmtree(root)
    return {"bytes": size, "files": files, "cores": os.cpu_count() or 1,
            "parallel_s": round(par, 3), "one_thread_s": round(seq, 3),
            "sha256sum_s": round(sums, 3), "ratio_to_sha256sum": round(sums / par, 3),
            "verify_s": round(verify_s, 3),
            "verify_names_flipped_file": bad.diff is not None and bad.diff.changed == [
                paths[len(paths) // 2].name]}


def _flip(p: Path) -> None:
    with p.open("r+b") as fh:
        fh.seek(12345)
        b = fh.read(1)
        fh.seek(12345)
        fh.write(bytes([b[0] ^ 1]))


def run_overhead(tmp: Path, led: Ledger, n: int) -> dict[str, float]:
    work = tmp / "run"
    work.mkdir()
    (work / "in.txt").write_text("input\n")
    (work / "out.txt").write_text("output\n")
    register_path(led, work / "in.txt", "dataset")
    plain = [_timed(lambda: subprocess.run(["true"], check=True)) for _ in range(n)]
    lib = []
    for i in range(n):
        (work / "out.txt").write_text(f"output {i}\n")
        lib.append(_timed(lambda: run_command(led, "noop", ["true"], [work / "in.txt"],
                                              [work / "out.txt"], kind="model")))
    env = {**os.environ, "MLTRAIL_HOME": str(led.home.root), "MLTRAIL_PASSWORD": PASSWORD}
    exe = str(Path(sys.executable).with_name("mltrail"))
    cli, startup = [], []
    for i in range(max(3, n // 3)):
        (work / "out.txt").write_text(f"cli output {i}\n")
        cli.append(_timed(lambda: subprocess.run(
            [exe, "run", "--step", "noop", "-i", str(work / "in.txt"), "-o",
             str(work / "out.txt"), "--", "true"], env=env, check=True,
            stdout=subprocess.DEVNULL)))
        startup.append(_timed(lambda: subprocess.run([exe, "--help"], env=env, check=True,
                                                     stdout=subprocess.DEVNULL)))
    med = statistics.median
    return {"noop_command_ms": round(med(plain) * 1000, 1),
            "library_overhead_ms": round((med(lib) - med(plain)) * 1000, 1),
            "cli_run_ms": round(med(cli) * 1000, 1),
            "cli_startup_ms": round(med(startup) * 1000, 1),
            "cli_overhead_beyond_startup_ms": round((med(cli) - med(startup)) * 1000, 1)}


def merkle(led: Ledger, art: str, count: int) -> dict[str, float]:
    records = [{"file": f"part-{i:06d}", "sha256": f"{i:064x}"} for i in range(count)]
    t0 = time.perf_counter()
    res = batch.anchor_batch(led, art, records)
    anchor_s = time.perf_counter() - t0
    tree = anchor.levels([anchor.leaf_hash(anchor.record_bytes(r)) for r in records])
    root = tree[-1][0]
    rng = random.Random(0)
    idx = [rng.randrange(count) for _ in range(1000)]
    proofs = [(records[i], i, anchor.path_in(tree, i)) for i in idx]
    t0 = time.perf_counter()
    ok = all(anchor.verify_inclusion(r, i, count, p, root) for r, i, p in proofs)
    per_proof_us = (time.perf_counter() - t0) / len(proofs) * 1e6
    p = batch.make_proof(res["artefact_id"], records, idx[0])
    chain_ms = min(_timed(lambda: batch.verify_proof(led, p)) for _ in range(5)) * 1000
    return {"records_per_anchor_tx": count, "anchor_gas": res["gas_used"],
            "anchor_incl_tree_s": round(anchor_s, 3), "proof_hashes": len(proofs[0][2]),
            "offline_proof_verify_us": round(per_proof_us, 1), "all_proofs_ok": ok,
            "proof_verify_against_chain_ms": round(chain_ms, 2)}


def tamper_rates(tmp: Path, led: Ledger, seeds: int) -> dict[str, dict[str, float]]:
    out = {}
    for name, fn in {**TAMPERS, **BENIGN}.items():
        flagged = named = digest_changed = 0
        for seed in range(seeds):
            rng = random.Random(f"{name}-{seed}")
            root = tmp / f"t-{name}-{seed}"
            for i in range(rng.randrange(2, 12)):
                sub = root / f"d{i % 3}"
                sub.mkdir(parents=True, exist_ok=True)
                (sub / f"f{i}").write_bytes(rng.randbytes(rng.randrange(1, 4000)))
            reg, _ = register_path(led, root, "dataset")
            touched = set(fn(root, rng).split("<->"))
            c = verify_path(led, root, reg.artefact_id)
            digest_changed += c.digest != led.artefact(reg.artefact_id).content_digest
            if not c.ok:
                flagged += 1
                d = c.diff
                names = set(d.added + d.removed + d.changed) if d else set()
                named += touched <= names | {n.removesuffix(".moved") for n in names}
            shutil.rmtree(root)
        key = "false_alarm_rate" if name in BENIGN else "detection_rate"
        out[name] = {key: flagged / seeds, "named_rate": named / seeds,
                     "folder_digest_alone_rate": digest_changed / seeds, "seeds": seeds}
    return out


def forgery_rates(tmp: Path, led: Ledger, seeds: int) -> dict[str, dict[str, float]]:
    work = tmp / "forge"
    work.mkdir()
    (work / "in.txt").write_text("x\n")
    (work / "o.txt").write_text("y\n")
    _, res = run_command(led, "s", ["true"], [work / "in.txt"], [work / "o.txt"])
    assert res is not None
    env = json.loads(led.home.store.get(res.envelope_digest))
    target = work / "env.json"
    out = {}
    for name, forge in FORGERIES.items():
        caught = 0
        for seed in range(seeds):
            target.write_text(json.dumps(forge(env, random.Random(f"{name}-{seed}"))))
            try:
                verify_envelope(led, target)
            except MltrailError:
                caught += 1
        out[name] = {"detection_rate": caught / seeds, "seeds": seeds}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bytes", type=int, default=1_000_000_000, help="file / folder size")
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--records", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--seeds", type=int, default=100)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="mltrail-bench-capture-") as d:
        tmp = Path(d)
        home = make_home(tmp)
        with Ledger.open(home, password=PASSWORD) as led:
            result = {
                "bench": "capture", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "cores": os.cpu_count(),
                "hash_1gb_file": hashing(tmp, args.bytes),
                "folder_1gb_1000_files": folder(tmp, args.bytes, args.files, led),
                "run_overhead": run_overhead(tmp, led, args.runs),
            }
            art = led.list_artefacts(limit=1)[0].id
            result["merkle"] = merkle(led, art, args.records)
            result["tamper"] = tamper_rates(tmp, led, args.seeds)
            result["forgery"] = forgery_rates(tmp, led, max(1, args.seeds // 2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
