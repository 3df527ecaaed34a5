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
python -c 'import httpx,json,sys; d=httpx.get(sys.argv[1]+"/v1/model").json(); d["url"]=sys.argv[1]; print(json.dumps(d, indent=1, sort_keys=True))' \
  "$PROVIDER" > "$ORA/service.json"
OSVC=$(mltrail --as oscar register "$ORA/service.json" --kind service --name provider-net --json | jget artefact_id)
run mltrail --as oscar transition "$OSVC" deployed

step "The admin deploys token + market once (the market gets the registry's auditor role) and admits three oracles"
run mltrail oracle deploy --supply 10000
for o in ora1 ora2 ora3; do
  mltrail id create "$o" >/dev/null
  run mltrail oracle admit "$o"
  mltrail oracle transfer "$o" 500 >/dev/null
  run mltrail --as "$o" oracle stake 200
done
mltrail oracle transfer alice 100 >/dev/null
run mltrail oracle params

step "Three oracle daemons start; alice pays 30 tokens for an audit of the provider"
for o in ora1 ora2 ora3; do
  mltrail --as "$o" oracle run --reference "$SUPPLIER" --queries 48 --poll 0.3 --tick 1 \
    > "$ORA/$o.log" 2>&1 &
  _ora_pids+=($!)
done
ROUND=$(mltrail --as alice audit request "$OSVC" --fee 30 --target "$PROVIDER" \
  --metrics agreement,accuracy,availability --json | jget round)
echo "round $ROUND opened; waiting for the oracles to audit, commit, reveal and finalise"
for _ in $(seq 1 600); do
  st=$(mltrail audit result "$ROUND" --json | python -c 'import json,sys; print(json.load(sys.stdin)["round"]["status"])')
  [ "$st" != open ] && break
  sleep 0.5
done
run mltrail audit result "$ROUND"
say "tail -n 1 $ORA/ora1.log   # each daemon logs one line per round"
tail -n 1 "$ORA/ora1.log"
run mltrail --as ora1 oracle status
run mltrail show "$OSVC"

kill "${_ora_pids[@]}" 2>/dev/null || true
wait "${_ora_pids[@]}" 2>/dev/null || true
if [ -n "$_ora_prev_trap" ]; then eval "$_ora_prev_trap"; else trap - EXIT; fi
unset _ora_pids _ora_prev_trap
