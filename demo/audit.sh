# Inference-service accountability (issue 4). Sourced by demo/run.sh after the ledger
# part: expects MLTRAIL_HOME, MLTRAIL_PASSWORD, DEMO_OUT, identities oscar (operator) and
# audrey (auditor), and the helpers step/say/run/jget.

step "Inference accountability: a supplier serves a model; two providers resell it, one cheats"
AUD="$DEMO_OUT/audit"
mkdir -p "$AUD"
_audit_pids=()
_audit_prev_trap=$(trap -p EXIT)
trap 'kill "${_audit_pids[@]}" 2>/dev/null || true' EXIT

# wait_port FILE: the port a background server wrote once it is listening
_audit_wait_port() {
  for _ in $(seq 1 300); do
    if [ -s "$1" ] && python -c 'import httpx,sys; httpx.get(sys.argv[1]+"/healthz").raise_for_status()' \
         "http://127.0.0.1:$(cat "$1")" 2>/dev/null; then
      cat "$1"; return 0
    fi
    sleep 0.2
  done
  echo "server did not start ($1)" >&2; return 1
}

run mltrail audit make-model --kind seeded --out "$AUD/model"
mltrail serve-model "$AUD/model/model.safetensors" --port 0 --port-file "$AUD/supplier.port" \
  --key "$AUD/supplier.pem" &
_audit_pids+=($!)
SUPPLIER="http://127.0.0.1:$(_audit_wait_port "$AUD/supplier.port")"
mltrail serve-proxy --upstream "$SUPPLIER" --mode honest --port 0 --cheap-model "$AUD/model/cheap.safetensors" \
  --port-file "$AUD/honest.port" &
_audit_pids+=($!)
mltrail serve-proxy --upstream "$SUPPLIER" --mode substitute --port 0 \
  --cheap-model "$AUD/model/cheap.safetensors" --port-file "$AUD/cheat.port" &
_audit_pids+=($!)
HONEST="http://127.0.0.1:$(_audit_wait_port "$AUD/honest.port")"
CHEAT="http://127.0.0.1:$(_audit_wait_port "$AUD/cheat.port")"
echo "supplier $SUPPLIER   honest provider $HONEST   cheating provider $CHEAT"
say "curl $SUPPLIER/v1/model   # digest, public key, claims, seed config"
python -c 'import httpx,json,sys; d=httpx.get(sys.argv[1]+"/v1/model").json(); print(json.dumps({k: d[k] for k in ("model_digest","public_key","claims","seed_config")}, indent=1))' "$SUPPLIER"
PUBKEY=$(python -c 'import httpx,sys; print(httpx.get(sys.argv[1]+"/v1/model").json()["public_key"])' "$SUPPLIER")

step "The operator registers both provider services on the ledger and deploys them"
for name in honest cheat; do
  url_var=$([ "$name" = honest ] && echo "$HONEST" || echo "$CHEAT")
  python -c 'import httpx,json,sys; d=httpx.get(sys.argv[1]+"/v1/model").json(); d["url"]=sys.argv[1]; print(json.dumps(d, indent=1, sort_keys=True))' \
    "$url_var" > "$AUD/service-$name.json"
  sid=$(mltrail --as oscar register "$AUD/service-$name.json" --kind service --name "provider-$name" --json | jget artefact_id)
  run mltrail --as oscar transition "$sid" deployed
  eval "SVC_${name}=$sid"
done

step "The auditor probes both with held-out digits, pins the supplier's key and rebuilds the model from its seed config; for the honest provider it also checks the robustness and latency claims"
run mltrail audit probes make --out "$AUD/probes.npz"
say "mltrail --as audrey audit run --target $HONEST --pubkey ... --probes ... --robustness --latency --service ${SVC_honest:0:12}..."
if ! mltrail --as audrey audit run --target "$HONEST" --pubkey "$PUBKEY" --probes "$AUD/probes.npz" \
     --service "$SVC_honest" --robustness --latency --duration 1.5 \
     --out "$AUD/report-honest.json" --html "$DEMO_OUT/audit-honest.html"; then
  rc=$?
  [ "$rc" -eq 1 ] || exit "$rc"
  echo "-> unexpected: the honest provider failed (an overloaded machine can miss the latency claim)"
fi
say "mltrail --as audrey audit run --target $CHEAT ... --stop-on-alarm --service ${SVC_cheat:0:12}..."
if mltrail --as audrey audit run --target "$CHEAT" --pubkey "$PUBKEY" --probes "$AUD/probes.npz" \
     --stop-on-alarm --service "$SVC_cheat" --out "$AUD/report-cheat.json" --html "$DEMO_OUT/audit-cheat.html"; then
  echo "-> unexpected: the substituting provider passed"
else
  rc=$?
  [ "$rc" -eq 1 ] || exit "$rc"
  echo "-> fraud detected (exit 1); the service is suspended with the report as evidence"
fi
run mltrail show "$SVC_honest"
run mltrail show "$SVC_cheat"
echo "reports: $DEMO_OUT/audit-honest.html $DEMO_OUT/audit-cheat.html"

kill "${_audit_pids[@]}" 2>/dev/null || true
wait "${_audit_pids[@]}" 2>/dev/null || true
if [ -n "$_audit_prev_trap" ]; then eval "$_audit_prev_trap"; else trap - EXIT; fi
unset _audit_pids _audit_prev_trap
