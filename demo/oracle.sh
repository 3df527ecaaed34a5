# The auditor network (issue 13). Sourced by demo/run.sh: expects MLTRAIL_HOME,
# MLTRAIL_PASSWORD, DEMO_OUT, identities alice and oscar (operator), the admin as the
# home's default identity, and the helpers step/say/run/jget.

step "The auditor network: three oracles audit a service, commit, reveal and agree on chain"
ORA="$DEMO_OUT/oracle"
mkdir -p "$ORA"
_ora_pids=()
_ora_prev_trap=$(trap -p EXIT)
trap 'kill "${_ora_pids[@]}" 2>/dev/null || true' EXIT

_ora_wait_port() {
  for _ in $(seq 1 300); do
    if [ -s "$1" ] && python -c 'import httpx,sys; httpx.get(sys.argv[1]+"/healthz").raise_for_status()' \
         "http://127.0.0.1:$(cat "$1")" 2>/dev/null; then
      cat "$1"; return 0
    fi
    sleep 0.2
  done
  echo "server did not start ($1)" >&2; return 1
}

MODEL="$DEMO_OUT/audit/model"
[ -f "$MODEL/model.safetensors" ] || run mltrail audit make-model --kind seeded --out "$MODEL"
mltrail serve-model "$MODEL/model.safetensors" --port 0 --port-file "$ORA/supplier.port" &
_ora_pids+=($!)
SUPPLIER="http://127.0.0.1:$(_ora_wait_port "$ORA/supplier.port")"
mltrail serve-proxy --upstream "$SUPPLIER" --mode honest --port 0 \
  --cheap-model "$MODEL/cheap.safetensors" --port-file "$ORA/provider.port" &
_ora_pids+=($!)
PROVIDER="http://127.0.0.1:$(_ora_wait_port "$ORA/provider.port")"
# signed claims on the ledger name the endpoint: the oracles audit that URL, never one
# a requester names
OSVC=$(mltrail --as oscar audit register --target "$PROVIDER" --name provider-net --json | jget artefact_id)
run mltrail --as oscar transition "$OSVC" deployed

step "The admin deploys token + market once (the market gets the registry's auditor role) and admits three oracles"
run mltrail oracle deploy --supply 10000
for o in ora1 ora2 ora3; do mltrail id create "$o" >/dev/null; done
run mltrail oracle admit ora1
run mltrail oracle transfer ora1 500
run mltrail --as ora1 oracle stake 200
say "(the same for ora2 and ora3, and 100 tokens for alice, in one library session)"
python - <<'PY'
from mltrail.oracle import Market
with Market.open() as admin:
    for o in ("ora2", "ora3"):
        admin.admit(o)
        admin.transfer(o, 500)
    admin.transfer("alice", 100)
for o in ("ora2", "ora3"):
    with Market.open(identity=o) as m:
        m.stake(200)
PY

step "Three oracle daemons start; alice pays 30 tokens for an audit of the provider"
for o in ora1 ora2 ora3; do
  mltrail --as "$o" oracle run --reference "$SUPPLIER" --queries 64 --poll 0.3 --tick 1 \
    > "$ORA/$o.log" 2>&1 &
  _ora_pids+=($!)
done
ROUND=$(mltrail --as alice audit request "$OSVC" --fee 30 \
  --metrics agreement,accuracy,availability --json | jget round)
echo "round $ROUND opened; waiting for the oracles to audit, commit, reveal and finalise"
python - "$ROUND" <<'PY'
import sys, time
from mltrail.oracle import Market
with Market.open() as m:
    for _ in range(1200):
        if m.round(int(sys.argv[1])).status != "open":
            break
        time.sleep(0.25)
PY
run mltrail audit result "$ROUND" --check-probes
say "tail -n 1 $ORA/ora1.log   # each daemon logs one line per round"
tail -n 1 "$ORA/ora1.log"
run mltrail --as ora1 oracle status
run mltrail show "$OSVC"

kill "${_ora_pids[@]}" 2>/dev/null || true
wait "${_ora_pids[@]}" 2>/dev/null || true
if [ -n "$_ora_prev_trap" ]; then eval "$_ora_prev_trap"; else trap - EXIT; fi
unset _ora_pids _ora_prev_trap
