# Proof-of-Learning for a user's own PyTorch loop (issues 10 and 18). Sourced by
# demo/run.sh after demo/pol.sh: expects DEMO_OUT and the helpers step/say/run. About 40 s
# on an idle machine.

LOOP="$DEMO_OUT/pol-loop"
mkdir -p "$LOOP/code"

step "Proof-of-Learning for your own loop: a small CNN with BatchNorm, Adam with two parameter groups, a cosine schedule, a loss of your own; three lines of the loop are mltrail's"
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
with mltrail.record_loop(out / "proof", model, opt, loader, loss=mytask.my_loss,
                         scheduler=sched, epochs=3, k=3, init_seed=0) as rec:  # mltrail
    for epoch in range(3):
        for xb, yb in rec.loader:                                  # mltrail
            opt.zero_grad()
            mytask.my_loss(model(xb), yb).backward()
            opt.step()
            sched.step()
            rec.step()                                             # mltrail
spec = rec.manifest.header.training
print(f"recorded {spec.total_steps} steps, {len(rec.manifest.checkpoints())} checkpoints; "
      f"{spec.optimizer.name} with {len(spec.optimizer.groups)} groups, {spec.scheduler.name}; "
      f"model and loss exported as torch.export programs: "
      f"{', '.join(sorted(p.name for p in (out / 'proof' / 'program').iterdir()))}")
PY

step "victor verifies it with none of the prover's Python: the model and the loss are exported programs (aten operators), replayed in his own process"
run mltrail pol verify "$LOOP/proof" --data "$LOOP/images.safetensors"

step "A --code folder that patches any Python that puts it on its path (sitecustomize, a .pth, packages named torch and mltrail): nothing of it runs"
python - "$LOOP" <<'PY'
import sys
from pathlib import Path
from mltrail.testing.pol_export_adversaries import patching_code_folder
out = Path(sys.argv[1])
patching_code_folder(out / "patching", out / "CANARY")
print("wrote", ", ".join(sorted(p.name for p in (out / "patching").iterdir())))
PY
run mltrail pol verify "$LOOP/proof" --data "$LOOP/images.safetensors" --code "$LOOP/patching"
[ -e "$LOOP/CANARY" ] && echo "the patching folder RAN" || echo "canary absent: nothing of it ran"

step "mallory rewrites the program to call an operator a patching module would register (digest re-pinned, manifest re-chained): refused before anything runs"
python - "$LOOP" <<'PY'
import sys
from pathlib import Path
from mltrail.testing.pol_export_adversaries import tamper_program
out = Path(sys.argv[1])
tamper_program(out / "tampered", out / "proof", "custom_op", out / "CANARY")
PY
rc=0; mltrail pol verify "$LOOP/tampered" --data "$LOOP/images.safetensors" \
  > "$LOOP/tampered.txt" || rc=$?
grep -E "REJECTED|program" "$LOOP/tampered.txt" | head -2 || true
echo "exit $rc (1 = proof rejected)"

step "A loop that must run its own Python is recorded in trusted-code mode: verifying it without --trusted-code is the verifier's input error (exit 2), not a verdict"
python - "$LOOP" <<'PY'
import sys
from pathlib import Path
from mltrail.testing.pol_loop_adversaries import honest
out = Path(sys.argv[1])
honest(out / "trusted", out / "trusted-code", 0)
PY
rc=0; mltrail pol verify "$LOOP/trusted" --data "$LOOP/images.safetensors" 2> "$LOOP/trusted.txt" || rc=$?
cat "$LOOP/trusted.txt"; echo "exit $rc (2 = refused, nothing recorded)"

step "Calibrating the replay threshold on this set-up (every segment replayed with 2 threads)"
mltrail pol calibrate --bundle "$LOOP/proof" --data "$LOOP/images.safetensors" \
  --json > "$LOOP/calibration.json"
python - "$LOOP/calibration.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
print(f"{c['replays']} replays, honest error at most {c['honest_max']:.2g}; implied threshold "
      f"{c['threshold']:.3g} (a proof that declares no environment: {c['default_threshold']})")
PY
