# Proof-of-Learning (issues 3 and 7). Sourced by demo/run.sh after the ledger part: expects
# MLTRAIL_HOME, MLTRAIL_PASSWORD, DEMO_OUT, identities alice (data_steward +
# model_developer), victor (verifier) and mallory (model_developer), and the helpers
# step/say/run/jget. About a minute on an idle machine.

POL="$DEMO_OUT/pol"
mkdir -p "$POL"

step "Proof-of-Learning: alice anchors the start of training (its block fixes her init seed), then trains a CNN on digits; each epoch's Merkle root goes on chain as she trains"
say "mltrail --as alice pol train $POL/alice --data digits --epochs 3 --k 10 --name digits-cnn"
mltrail --as alice pol train "$POL/alice" --data digits --epochs 3 --k 10 --name digits-cnn \
  --json > "$POL/train.json"
POL_MODEL=$(jget model_id < "$POL/train.json")
POL_DS=$(jget dataset_id < "$POL/train.json")
python - "$POL/train.json" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))
print(f"init seed fixed by block {t['init_seed_block']} (alice's start anchor, before step 0)")
print(f"{t['steps']} steps, {t['checkpoints']} checkpoints, final weights {t['final_model']}")
for a in t["anchors"]:
    print(f"  epoch {a['epoch']} root {a['root'][:16]}… anchored in block {a['block']}")
print(f"model {t['model_id']} registered and moved to 'trained' (tx {t['tx_hash'][:18]}…)")
PY

step "mallory forges a proof for alice's weights (checkpoints interpolated from a fresh init) and claims the model"
run mltrail --as mallory pol forge "$POL/alice" "$POL/mallory"
POL_FORGED=$(mltrail --as mallory pol publish "$POL/mallory" --name my-cnn --parent "$POL_DS" \
  --json | jget model_id)
echo "mallory's claim: model $POL_FORGED (same weights digest)"

step "victor verifies alice's proof, replayed in the environment her proof declares (threads, deterministic mode): every replayed segment must be bit-exact. The challenge mixes the block two after publication with victor's fresh secret, so alice could not know it before the verdict. R comes from the stated miss rate"
run mltrail --as victor pol verify --model "$POL_MODEL" --miss-rate 0.01 --forged 0.1 \
  --report "$POL/report.json" --html "$POL/report.html"
say "the report reveals the secret: anyone can recompute the selection with it"
POL_SECRET=$(python -c 'import json,sys; print(json.load(open(sys.argv[1]))["challenge"]["secret"])' "$POL/report.json")
mltrail pol verify --model "$POL_MODEL" --no-record --secret "$POL_SECRET" --json > "$POL/again.json"
python - "$POL/report.json" "$POL/again.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
segs = lambda r: [s["index"] for s in r["segments"]]
print(f"seed {a['verifier_seed']} == {b['verifier_seed']}: {a['verifier_seed'] == b['verifier_seed']}; "
      f"segments {segs(a)} == {segs(b)}: {segs(a) == segs(b)}")
PY

step "victor verifies mallory's forgery: rejected, and the rejection is recorded on the ledger with the report as evidence"
say "mltrail --as victor pol verify --model $POL_FORGED --data digits"
rc=0; mltrail --as victor pol verify --model "$POL_FORGED" --data digits \
  --report "$POL/forged-report.json" || rc=$?
echo "exit $rc (1 = proof rejected)"
run mltrail history "$POL_FORGED"

step "Re-submission gains nothing: a new publication of the same weights waits for its own challenge block, and every earlier publication of them (rejected or abandoned) halves its miss rate"
POL_AGAIN=$(mltrail --as mallory pol publish "$POL/mallory" --name my-cnn-v2 --parent "$POL_DS" \
  --json | jget model_id)
say "mltrail --as victor pol verify --model $POL_AGAIN --data digits   # too early"
rc=0; mltrail --as victor pol verify --model "$POL_AGAIN" --data digits || rc=$?
echo "exit $rc (2 = refused: the challenge block does not exist yet)"
run mltrail transition "$POL_MODEL" approved
rc=0; mltrail --as victor pol verify --model "$POL_AGAIN" --data digits --json \
  > "$POL/again-report.json" || rc=$?
python - "$POL/again-report.json" "$rc" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"earlier rejections of these weights: {r['prior_rejections']}; every publication "
      f"of them counts: {len(r['publications'])} (R = {r['r']}, effective miss rate "
      f"{r['r_rule'].get('effective_miss_rate')})")
print(f"verdict {r['verdict']} (exit {sys.argv[2]}); recorded: {r['ledger']['state']}")
PY

step "Who trained it? The dispute verifies every claimant, then compares anchored chronologies"
run mltrail pol dispute "$POL_MODEL" --data digits
run mltrail show "$POL_MODEL"
