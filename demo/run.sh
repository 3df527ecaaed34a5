#!/usr/bin/env bash
# The whole mltrail story on the embedded ledger. Run with `make demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
export DEMO_OUT="${DEMO_OUT:-$PWD/demo-out}"
rm -rf "$DEMO_OUT"
mkdir -p "$DEMO_OUT"
export MLTRAIL_HOME="$DEMO_OUT/.mltrail" MLTRAIL_PASSWORD=demo
export COLUMNS=100

step() { printf '\n\033[1;36m== %s\033[0m\n' "$*"; }
say() { printf '\033[2m$ %s\033[0m\n' "$*"; }
run() { say "$*"; "$@"; }
# jget KEY: read one field of the JSON on stdin
jget() { python -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

step "1. A consortium ledger: one command, no server (embedded EVM running the Vyper registry)"
run mltrail init
for who in alice victor audrey oscar mallory; do run mltrail id create "$who"; done
run mltrail roles grant alice data_steward
run mltrail roles grant alice model_developer
run mltrail roles grant victor verifier
run mltrail roles grant audrey auditor
run mltrail roles grant oscar operator
run mltrail roles grant mallory model_developer
run mltrail roles list

step "2. Alice's own script makes a dataset; she registers it and the steward walks it to approved"
python - "$DEMO_OUT/digits.npz" <<'PY'
import sys, numpy as np
from sklearn.datasets import load_digits
d = load_digits()
np.savez(sys.argv[1], x=d.data.astype("float32") / 16.0, y=d.target.astype("int64"))
PY
DS=$(mltrail --as alice register "$DEMO_OUT/digits.npz" --kind dataset --name digits --json | jget artefact_id)
echo "dataset artefact: $DS"
run mltrail --as alice transition "$DS" validated
run mltrail transition "$DS" approved

step "3. A baseline model derived from the dataset walks its lifecycle; roles are enforced"
python - "$DEMO_OUT/digits.npz" "$DEMO_OUT/baseline.json" <<'PY'
import json, sys, numpy as np
from sklearn.linear_model import LogisticRegression
d = np.load(sys.argv[1])
m = LogisticRegression(max_iter=300).fit(d["x"], d["y"])
json.dump({"coef": m.coef_.round(6).tolist(), "intercept": m.intercept_.round(6).tolist()},
          open(sys.argv[2], "w"))
PY
BASE=$(mltrail --as alice register "$DEMO_OUT/baseline.json" --kind model --parent "$DS" --name baseline --json | jget artefact_id)
run mltrail --as alice transition "$BASE" trained
run mltrail --as alice transition "$BASE" evaluated
say "mltrail --as mallory transition $BASE verified   # mallory is no verifier"
if ! mltrail --as mallory transition "$BASE" verified; then echo "-> refused, nothing written"; fi
run mltrail --as victor transition "$BASE" verified
run mltrail transition "$BASE" approved
say "mltrail --as oscar transition $BASE retired   # not a legal move from approved for an operator"
if ! mltrail --as oscar transition "$BASE" retired; then echo "-> refused, nothing written"; fi
run mltrail --as oscar transition "$BASE" deployed
run mltrail history "$BASE"
run mltrail lineage "$DS"

for part in demo/speed.sh demo/ledger.sh demo/provenance.sh demo/pol.sh demo/pol_loop.sh demo/distributed.sh demo/audit.sh demo/audit_any.sh demo/oracle.sh demo/node.sh demo/lifecycle.sh; do
  if [ -f "$part" ]; then
    # shellcheck source=/dev/null
    source "$part"
  fi
done


step "Finally: the chain checks out, block by block and event by event"
run mltrail ledger check
run mltrail list
echo
echo "demo output in $DEMO_OUT"
if [ "${SERVE:-}" = "1" ]; then
  step "Serving the dashboard on the demo's ledger (Ctrl-C to stop)"
  echo "open http://127.0.0.1:${PORT:-8470}/   (tokens: mltrail --home $MLTRAIL_HOME token create NAME --identity alice)"
  exec mltrail serve --port "${PORT:-8470}"
fi
