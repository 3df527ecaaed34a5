# Proof-of-Learning (issue 3). Sourced by demo/run.sh after the ledger part: expects
# MLTRAIL_HOME, MLTRAIL_PASSWORD, DEMO_OUT, identities alice (data_steward +
# model_developer), victor (verifier) and mallory (model_developer), and the helpers
# step/say/run/jget. About half a minute on an idle machine.

POL="$DEMO_OUT/pol"
mkdir -p "$POL"

step "Proof-of-Learning: alice trains a CNN on digits under the recorder; each epoch's Merkle root goes on chain as she trains"
say "mltrail --as alice pol train $POL/alice --data digits --epochs 3 --k 10 --name digits-cnn"
mltrail --as alice pol train "$POL/alice" --data digits --epochs 3 --k 10 --name digits-cnn \
  --json > "$POL/train.json"
POL_MODEL=$(jget model_id < "$POL/train.json")
POL_DS=$(jget dataset_id < "$POL/train.json")
python - "$POL/train.json" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))
print(f"{t['steps']} steps, {t['checkpoints']} checkpoints, final weights {t['final_model']}")
print(f"training bytes registered as dataset {t['dataset_id']}")
for a in t["anchors"]:
    print(f"  epoch {a['epoch']} root {a['root'][:16]}… anchored in block {a['block']}")
print(f"model {t['model_id']} registered and moved to 'trained' (tx {t['tx_hash'][:18]}…)")
PY

step "victor verifies the proof by partial replay; the model goes to 'verified' with the report as evidence"
run mltrail --as victor pol verify --model "$POL_MODEL" --data digits --q 1 --random 2 \
  --report "$POL/report.json" --html "$POL/report.html"

step "mallory forges a proof for alice's weights (checkpoints interpolated from a fresh init) and claims the model"
run mltrail --as mallory pol forge "$POL/alice" "$POL/mallory"
POL_FORGED=$(mltrail --as mallory pol publish "$POL/mallory" --name my-cnn --parent "$POL_DS" \
  --json | jget model_id)
echo "mallory's claim: model $POL_FORGED (same weights digest)"
say "mltrail --as victor pol verify --model $POL_FORGED --data digits"
if ! mltrail --as victor pol verify --model "$POL_FORGED" --data digits \
     --report "$POL/forged-report.json"; then
  echo "forged proof rejected (exit 1); nothing recorded on the ledger"
fi

step "Who trained it? The dispute verifies every claimant, then compares anchored chronologies"
run mltrail pol dispute "$POL_MODEL" --data digits
run mltrail show "$POL_MODEL"
