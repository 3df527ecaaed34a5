# A home with its own lifecycle (issue 10): the lab lifecycle of docs/lifecycle.md, whose
# kinds and states have other names, runs Proof-of-Learning and an audit. Sourced by
# demo/run.sh: expects DEMO_OUT, MLTRAIL_PASSWORD and the helpers step/say/run/jget. Uses
# its own home, so the main demo home is left as it was.

step "Your own lifecycle: a lab calls its models 'network' (drafted, fitted, certified) and its services 'endpoint' (submitted, live, cleared); PoL and audits follow its bindings"
LAB="$DEMO_OUT/lab"
LH="$LAB/.mltrail"
mkdir -p "$LAB"
python - docs/lifecycle.md "$LAB/lab.yaml" <<'PY'
import re, sys
open(sys.argv[2], "w").write(re.findall(r"```yaml\n(.*?)```", open(sys.argv[1]).read(), re.S)[0])
PY
run sed -n '/^bindings:/,$p' "$LAB/lab.yaml"
run mltrail --home "$LH" init --lifecycle "$LAB/lab.yaml" --name admin
for who in bob:builder carol:checker olga:runner ivan:inspector; do
  mltrail --home "$LH" id create "${who%%:*}" >/dev/null
  run mltrail --home "$LH" roles grant "${who%%:*}" "${who##*:}"
done
LM=$(cd "$LAB" && mltrail --home "$LH" --as bob pol train "$LAB/proof" --epochs 1 --k 20 --json | jget model_id)
echo "proof recorded; model $LM is $(mltrail --home "$LH" show "$LM" --json | jget state)"
printf 'x,y\n1,2\n' > "$LAB/notes.csv"
run mltrail --home "$LH" --as bob register "$LAB/notes.csv" --kind corpus
run mltrail --home "$LH" --as carol pol verify --model "$LM"
run mltrail --home "$LH" show "$LM"
(cd "$LAB" && mltrail --home "$LH" audit make-model --out "$LAB/served" >/dev/null)
mltrail --home "$LH" serve-model "$LAB/served/model.safetensors" --key "$LAB/k.pem" --port 0 \
  --port-file "$LAB/port" 2>/dev/null &
_lab_pid=$!
for _ in $(seq 1 300); do
  if [ -s "$LAB/port" ] && python -c 'import httpx,sys; httpx.get(sys.argv[1]+"/healthz").raise_for_status()' \
       "http://127.0.0.1:$(cat "$LAB/port")" 2>/dev/null; then break; fi
  sleep 0.2
done
LURL="http://127.0.0.1:$(cat "$LAB/port")"
LS=$(mltrail --home "$LH" --as olga audit register --target "$LURL" --name lab-svc --json | jget artefact_id)
run mltrail --home "$LH" --as olga transition "$LS" live
run mltrail --home "$LH" --as ivan audit run "$LS" --max-queries 80 --seed 4
kill "$_lab_pid" 2>/dev/null || true
run mltrail --home "$LH" list
