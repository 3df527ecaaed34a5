# Audits of any inference API (issue 10): a service speaking the Open Inference Protocol
# (KServe / Triton v2) and a TF-Serving-style API described by an adapter file, each
# honest and substituting, and an audit with no identity test (inconclusive, exit 1).
# Sourced by demo/run.sh after demo/audit.sh (uses its model when there); expects
# DEMO_OUT and the helpers step/say/run.

step "Audits of any inference API: the Open Inference Protocol and an adapter file"
ANY="$DEMO_OUT/audit-any"
mkdir -p "$ANY"
_any_pids=()
_any_prev_trap=$(trap -p EXIT)
trap 'kill "${_any_pids[@]}" 2>/dev/null || true' EXIT
MODEL_DIR="${AUD:-$ANY}/model"
[ -f "$MODEL_DIR/model.safetensors" ] || run mltrail audit make-model --kind seeded --out "$MODEL_DIR"

_any_port() {  # FILE URL-SUFFIX: the port a background server wrote, once it answers
  for _ in $(seq 1 300); do
    if [ -s "$1" ] && python -c 'import httpx,sys; httpx.get(sys.argv[1]).raise_for_status()' \
         "http://127.0.0.1:$(cat "$1")$2" 2>/dev/null; then cat "$1"; return 0; fi
    sleep 0.2
  done
  echo "server did not start ($1)" >&2; return 1
}
_any_expect() {  # RC CMD...: run CMD (shown); stop the demo unless it exits with RC
  local want=$1 rc=0; shift; say "$*"; "$@" || rc=$?
  if [ "$rc" -ne "$want" ]; then echo "demo: expected exit $want, got $rc from: $*" >&2; exit 1; fi
}

mltrail serve-model "$MODEL_DIR/model.safetensors" --port 0 --port-file "$ANY/v2.port" \
  --key "$ANY/supplier.pem" 2>/dev/null &
_any_pids+=($!)
python -m mltrail.testing.audit_oip oipsniffer "$MODEL_DIR/model.safetensors" \
  --cheap-model "$MODEL_DIR/cheap.safetensors" --key "$ANY/supplier.pem" \
  --port-file "$ANY/sniffer.port" 2>/dev/null &
_any_pids+=($!)
python -m mltrail.testing.audit_foreign "$MODEL_DIR/model.safetensors" --style tf \
  --port-file "$ANY/tf.port" 2>/dev/null &
_any_pids+=($!)
python -m mltrail.testing.audit_foreign "$MODEL_DIR/cheap.safetensors" --style tf \
  --port-file "$ANY/tfcheap.port" 2>/dev/null &
_any_pids+=($!)
V2="http://127.0.0.1:$(_any_port "$ANY/v2.port" /v2/health/ready)/v2/models/digits-mlp"
SNIFF="http://127.0.0.1:$(_any_port "$ANY/sniffer.port" /healthz)/v2/models/digits-mlp"
TF="http://127.0.0.1:$(_any_port "$ANY/tf.port" /v1/models/m)"
TFCHEAP="http://127.0.0.1:$(_any_port "$ANY/tfcheap.port" /v1/models/m)"
PUB=$(python -c 'import httpx,sys; print(httpx.get(sys.argv[1]).json()["public_key"])' "${V2%/v2/*}/v1/model")
say "curl $V2    # v2 model metadata"
python -c 'import httpx,json,sys; print(json.dumps(httpx.get(sys.argv[1]).json()))' "$V2"

step "v2: the genuine service passes (receipts ride in the response parameters); a provider that tries to spot the auditor's v2 requests spots none and is caught"
_any_expect 0 mltrail audit run --target "$V2" --model "$MODEL_DIR/model.safetensors" \
  --pubkey "$PUB" --max-queries 80
_any_expect 1 mltrail audit run --target "$SNIFF" --model "$MODEL_DIR/model.safetensors" \
  --pubkey "$PUB" --max-queries 80 --stop-on-alarm
_any_expect 1 mltrail audit run --target "$V2" --max-queries 40
echo "-> no reference, no labelled probes, no claim to test: inconclusive (exit 1), never pass"

step "An adapter file lets the auditor speak to a TF-Serving-style API"
cat > "$ANY/tf-serving.yaml" <<'YAML'
v: 1
name: tf-serving digits
request: {path: "/v1/models/m:predict", body: {instances: "$inputs"}}
response: {outputs: /predictions, probs: ""}
input_shape: [1, 8, 8]
classes: 10
YAML
cat "$ANY/tf-serving.yaml"
_any_expect 0 mltrail audit run --target "$TF" --adapter "$ANY/tf-serving.yaml" \
  --model "$MODEL_DIR/model.safetensors" --max-queries 80
_any_expect 1 mltrail audit run --target "$TFCHEAP" --adapter "$ANY/tf-serving.yaml" \
  --model "$MODEL_DIR/model.safetensors" --max-queries 80 --stop-on-alarm
echo "-> the substitute behind the TF-Serving-style API is caught (exit 1)"

kill "${_any_pids[@]}" 2>/dev/null || true
wait "${_any_pids[@]}" 2>/dev/null || true
if [ -n "$_any_prev_trap" ]; then eval "$_any_prev_trap"; else trap - EXIT; fi
unset _any_pids _any_prev_trap
