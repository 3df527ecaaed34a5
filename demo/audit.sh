# Inference-service accountability (issues 4, 8 and 19). Sourced by demo/run.sh after the
# ledger part: expects MLTRAIL_HOME, MLTRAIL_PASSWORD, DEMO_OUT, identities oscar
# (operator) and audrey (auditor), and the helpers step/say/run/jget. Fails loudly: every
# audit's exit code is checked against the one the story expects.

step "Inference accountability: a supplier serves a model; a second service runs the same model with the same key but dodges audits"
AUD="$DEMO_OUT/audit"
mkdir -p "$AUD"
_audit_pids=()
_audit_prev_trap=$(trap -p EXIT)
trap 'kill "${_audit_pids[@]}" 2>/dev/null || true' EXIT

# _audit_wait_port FILE: the port a background server wrote once it answers /healthz
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

# _audit_expect RC CMD...: run CMD (shown), and stop the demo unless it exits with RC
_audit_expect() {
  local want=$1 rc=0
  shift
  say "$*"
  "$@" || rc=$?
  if [ "$rc" -ne "$want" ]; then
    echo "demo: expected exit $want, got $rc from: $*" >&2
    exit 1
  fi
}

run mltrail audit make-model --kind seeded --out "$AUD/model"
mltrail serve-model "$AUD/model/model.safetensors" --port 0 --port-file "$AUD/supplier.port" \
  --key "$AUD/supplier.pem" &
_audit_pids+=($!)
SUPPLIER="http://127.0.0.1:$(_audit_wait_port "$AUD/supplier.port")"
say "python -m mltrail.testing.audit_memoriser MODEL --cheap-model CHEAP --key supplier.pem   # the dodger"
python -m mltrail.testing.audit_memoriser "$AUD/model/model.safetensors" \
  --cheap-model "$AUD/model/cheap.safetensors" --key "$AUD/supplier.pem" \
  --port-file "$AUD/memo.port" &
_audit_pids+=($!)
MEMO="http://127.0.0.1:$(_audit_wait_port "$AUD/memo.port")"
echo "supplier $SUPPLIER   memoriser $MEMO (genuine model for inputs near public digits, a cheap one for the rest)"

step "The operator registers both services with their claims, signed, on the ledger"
SVC_honest=$(mltrail --as oscar audit register --target "$SUPPLIER" --name supplier --json | jget artefact_id)
SVC_memo=$(mltrail --as oscar audit register --target "$MEMO" --name memoriser --json | jget artefact_id)
run mltrail --as oscar transition "$SVC_honest" deployed
run mltrail --as oscar transition "$SVC_memo" deployed
run mltrail show "$SVC_memo"

step "The auditor audits the supplier from its ledger claims: its own held data as probes (checked against real handwriting by key-less detectors), seeded rebuild, receipts required, latency on the same stream"
_audit_expect 0 mltrail --as audrey audit run "$SVC_honest" --max-queries 300 \
  --out "$AUD/report-honest.json" --html "$DEMO_OUT/audit-honest.html"

step "The dodge: public-benchmark probes are all near public digits, so the memoriser answers them honestly"
run mltrail audit probes make --source benchmark --out "$AUD/bench.npz"
_audit_expect 1 mltrail audit run --target "$MEMO" --model "$AUD/model/model.safetensors" \
  --probes "$AUD/bench.npz"
echo "-> no alarm, but inconclusive (exit 1): public probes cannot pass an audit on their own"

step "The same service audited from the ledger with the auditor's own held data (never published)"
_audit_expect 1 mltrail --as audrey audit run "$SVC_memo" --max-queries 300 --stop-on-alarm \
  --out "$AUD/report-memo.json" --html "$DEMO_OUT/audit-memo.html"
echo "-> caught (exit 1); the service is suspended with the report as evidence"
run mltrail show "$SVC_honest"
run mltrail show "$SVC_memo"
echo "reports: $DEMO_OUT/audit-honest.html $DEMO_OUT/audit-memo.html"

kill "${_audit_pids[@]}" 2>/dev/null || true
wait "${_audit_pids[@]}" 2>/dev/null || true
if [ -n "$_audit_prev_trap" ]; then eval "$_audit_prev_trap"; else trap - EXIT; fi
unset _audit_pids _audit_prev_trap
