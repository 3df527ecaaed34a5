# Provenance capture (issue 11). Sourced by demo/run.sh after the ledger part: expects
# MLTRAIL_HOME, MLTRAIL_PASSWORD, DEMO_OUT, identities alice (data_steward +
# model_developer) and victor, and the helpers step/say/run/jget. About 20 s.

PROV="$DEMO_OUT/provenance"
mkdir -p "$PROV/raw"
cd "$PROV"
python - <<'PY'
import numpy as np
from sklearn.datasets import load_digits
d = load_digits()
for part in range(4):  # the raw data arrives as four shards in a folder
    idx = np.arange(part, len(d.target), 4)
    np.savez(f"raw/shard-{part}.npz", x=d.data[idx], y=d.target[idx])
PY
cat > prepare.py <<'PY'
import glob, sys, numpy as np
shards = [np.load(f) for f in sorted(glob.glob("raw/*.npz"))]
x = np.concatenate([s["x"] for s in shards]).astype("float32") / 16.0
y = np.concatenate([s["y"] for s in shards]).astype("int64")
np.savez("clean.npz", x=x, y=y)
print(f"prepared {len(y)} examples from {len(shards)} shards")
PY
cat > train.py <<'PY'
import json, sys, numpy as np
from sklearn.linear_model import LogisticRegression
d = np.load("clean.npz")
m = LogisticRegression(max_iter=int(sys.argv[1]), C=float(sys.argv[2])).fit(d["x"], d["y"])
json.dump({"coef": m.coef_.round(6).tolist(), "intercept": m.intercept_.round(6).tolist()},
          open("model.json", "w"))
print(f"train accuracy {m.score(d['x'], d['y']):.3f}")
PY

step "Provenance: alice's own scripts run under 'mltrail run'; inputs, outputs, code and environment go into a signed in-toto statement"
run mltrail --as alice run --step prepare --kind dataset -i raw --code prepare.py -o clean.npz -p scale=16 -- python prepare.py
run mltrail --as alice run --step train --kind model -i clean.npz --code train.py -o model.json -p max_iter=300 -p C=1.0 -- python train.py 300 1.0
PMODEL=$(mltrail verify model.json --json | python -c 'import json,sys; print(json.load(sys.stdin)["checks"][0]["artefact"]["id"])')

say "mltrail run --step broken -i clean.npz -o model.json -- python -c 'raise SystemExit(3)'   # a failing step"
rc=0; mltrail --as alice run --step broken -i clean.npz -o model.json -- python -c 'raise SystemExit(3)' || rc=$?
echo "-> exit code $rc passed through; nothing registered"

step "Anyone re-hashes the files: all match; then one byte of a raw shard is flipped and verify names the file"
run mltrail verify raw
python - <<'PY'
p = "raw/shard-2.npz"
b = bytearray(open(p, "rb").read()); b[len(b) // 2] ^= 1; open(p, "wb").write(bytes(b))
PY
say "mltrail verify --all"
rc=0; mltrail verify --all || rc=$?
echo "-> exit $rc: tampering detected, file named"

step "The model's lineage back to its raw data, drawn by Graphviz, and its provenance as W3C PROV and in-toto"
run mltrail lineage "$PMODEL" --up
run mltrail lineage "$PMODEL" --up --format png -o "$DEMO_OUT/lineage.png"
run mltrail export "$PMODEL" --format prov-json -o "$DEMO_OUT/provenance.prov.json"
run mltrail export "$PMODEL" --format in-toto -o "$DEMO_OUT/provenance.intoto.jsonl"
head -1 "$DEMO_OUT/provenance.intoto.jsonl" > statement.json
run mltrail verify --statement statement.json
say "python - \$ALICE provenance.intoto.jsonl   # securesystemslib alone, with alice's Ed25519 key read from her on-chain profile"
ALICE=$(mltrail id list --json | python -c 'import json,sys; print([i["address"] for i in json.load(sys.stdin) if i["name"] == "alice"][0])')
python - "$ALICE" "$DEMO_OUT/provenance.intoto.jsonl" <<'PY'
import json, re, sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey
from mltrail.ledger.client import Ledger

with Ledger.open() as led:
    profile = led.profile(sys.argv[1])
hexkey = re.search(r"(?:^| )ed25519:([0-9a-f]{64})(?: |$)", profile).group(1)
key = SSlibKey.from_crypto(Ed25519PublicKey.from_public_bytes(bytes.fromhex(hexkey)))
for n, line in enumerate(open(sys.argv[2]), 1):
    Envelope.from_dict(json.loads(line)).verify([key], 1)
print(f"{n} envelopes verified by securesystemslib with key {key.keyid[:16]}...")
PY

step "Batch anchoring: 10,000 per-record digests under one Merkle root in one transaction; one record proved"
python - <<'PY'
import json
with open("records.jsonl", "w") as fh:
    for i in range(10_000):
        fh.write(json.dumps({"row": i, "sha256": f"{i * 7919:064x}"}) + "\n")
PY
run mltrail --as alice anchor "$PMODEL" records.jsonl --proofs proofs
run mltrail verify --proof proofs/proof-4242.json
cd - >/dev/null
