# Training across untrusted workers on Ray: three workers, one Byzantine, caught by the
# coordinator's replay, excluded on the ledger; one proof of the run, verified. Sourced by
# demo/run.sh after the ledger is set up (alice: data_steward and model_developer; victor:
# verifier): expects DEMO_OUT and the helpers step/say/run/jget. One local Ray cluster
# starts (a few seconds on an idle machine).

DP="$DEMO_OUT/distributed"
mkdir -p "$DP"

step "Training across untrusted workers: alice registers the training data (digits, flat), then trains on 3 Ray workers; worker 2 scales every gradient by 1.0001"
python - "$DP/digits.safetensors" <<'PY'
import sys
from mltrail.distributed.task import load_data
from mltrail.provenance.digest import save_state_dict
x, y = load_data("digits").tensors
save_state_dict({"x": x, "y": y}, sys.argv[1])
print(f"{len(y)} samples of {x.shape[1]} features")
PY
DPDS=$(mltrail --as alice register "$DP/digits.safetensors" --kind dataset --name digits-flat --json | jget artefact_id)
run mltrail --as alice pol train-distributed "$DP/proof" --data "$DP/digits.safetensors" \
  --workers 3 --byzantine 2:scaled --dataset "$DPDS"

step "The exclusion is on the ledger: an anchor on the dataset whose metadata digest is the evidence (the update's record, the claimed and the replayed digests)"
run mltrail history "$DPDS"

step "victor verifies alice's proof with the ordinary verifier: the replay adds the per-shard gradients exactly as the coordinator did, so it must match bit for bit (error 0, no calibration)"
run mltrail --as victor pol verify "$DP/proof" --data "$DP/digits.safetensors"
