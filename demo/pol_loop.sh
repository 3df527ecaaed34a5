# Proof-of-Learning for a user's own PyTorch loop (issue 10). Sourced by demo/run.sh after
# demo/pol.sh: expects DEMO_OUT and the helpers step/say/run. About 30 s on an idle machine.

LOOP="$DEMO_OUT/pol-loop"
mkdir -p "$LOOP/code"

step "Proof-of-Learning for your own loop: a small ResNet, Adam with two parameter groups, a cosine schedule; three lines of the loop are mltrail's"
cat > "$LOOP/code/mytask.py" <<'PY'
import torch
from torch import nn

def make_model():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))

def my_loss(logits, target):
    return nn.functional.cross_entropy(logits, target, label_smoothing=0.1)
PY
sed -n '1,20p' "$LOOP/code/mytask.py"
python - "$LOOP" <<'PY'
import sys
from pathlib import Path
import torch
from torch.utils.data import DataLoader, TensorDataset
import mltrail
from mltrail.provenance.digest import save_state_dict

out = Path(sys.argv[1])
torch.set_num_threads(1)  # the verifier replays on one thread by default: bit for bit
sys.path.insert(0, str(out / "code"))
import mytask

g = torch.Generator().manual_seed(0)
x, y = torch.randn(96, 3, 8, 8, generator=g), torch.randint(0, 4, (96,), generator=g)
save_state_dict({"x": x, "y": y}, out / "images.safetensors")
torch.manual_seed(0)
model = mytask.make_model()
opt = torch.optim.Adam([{"params": model[0].parameters(), "lr": 3e-3},
                        {"params": model[5].parameters(), "lr": 1e-2, "weight_decay": 1e-4}])
sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=18)
loader = DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True)
with mltrail.record_loop(out / "proof", model, opt, loader, model_factory=mytask.make_model,
                         loss=mytask.my_loss, scheduler=sched, epochs=3, k=3,
                         init_seed=0) as rec:                      # mltrail
    for epoch in range(3):
        for xb, yb in rec.loader:                                  # mltrail
            opt.zero_grad()
            mytask.my_loss(model(xb), yb).backward()
            opt.step()
            sched.step()
            rec.step()                                             # mltrail
spec = rec.manifest.header.training
print(f"recorded {spec.total_steps} steps, {len(rec.manifest.checkpoints())} checkpoints; "
      f"{spec.optimizer.name} with {len(spec.optimizer.groups)} groups, "
      f"{spec.scheduler.name}; code pinned: {spec.model.ref} {spec.model.source[:19]}…")
PY

step "victor verifies it from the command line: the pinned code's digest first, then the replay in a separate process"
run mltrail pol verify "$LOOP/proof" --data "$LOOP/images.safetensors" --code "$LOOP/code"

step "The prover's code changes after recording (same import path, another loss): refused before any of it runs"
cp -r "$LOOP/code" "$LOOP/code-swapped"
sed -i 's/label_smoothing=0.1/label_smoothing=0.0/' "$LOOP/code-swapped/mytask.py"
say "mltrail pol verify $LOOP/proof --data $LOOP/images.safetensors --code $LOOP/code-swapped"
rc=0; mltrail pol verify "$LOOP/proof" --data "$LOOP/images.safetensors" \
  --code "$LOOP/code-swapped" > "$LOOP/swapped.txt" || rc=$?
grep -E "FAIL|REJECTED" "$LOOP/swapped.txt" || true
echo "exit $rc (1 = proof rejected)"

step "Calibrating the replay threshold on this set-up (every segment replayed with 2 threads and in float64)"
mltrail pol calibrate --bundle "$LOOP/proof" --data "$LOOP/images.safetensors" \
  --code "$LOOP/code" --json > "$LOOP/calibration.json"
python - "$LOOP/calibration.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
print(f"{c['replays']} replays, honest error at most {c['honest_max']:.2g}; implied threshold "
      f"{c['threshold']:.3g} (default {c['default_threshold']})")
PY
