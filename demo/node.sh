# Sourced by demo/run.sh: the participant node (REST API + dashboard) over the demo's home.
step "The node: the same ledger over HTTP for people and programs; tokens sign writes"
run mltrail token create oscar-ci --identity oscar
VIEWER=$(mltrail token create viewer --identity victor --read-only --json | jget token)
run mltrail token list
PORTFILE="$DEMO_OUT/node.port"
rm -f "$PORTFILE"
mltrail serve --port 0 --port-file "$PORTFILE" 2>/dev/null &
NODE_PID=$!
_node_prev_trap=$(trap -p EXIT)
trap 'kill "$NODE_PID" 2>/dev/null || true' EXIT
for _ in $(seq 600); do [ -s "$PORTFILE" ] && break; sleep 0.1; done
NODE="http://127.0.0.1:$(cat "$PORTFILE")"
for _ in $(seq 600); do curl -sf "$NODE/v1/health" >/dev/null && break; sleep 0.1; done
say "curl $NODE/v1/artefacts?kind=model"
curl -s "$NODE/v1/artefacts?kind=model" | python -c '
import json, sys
for a in json.load(sys.stdin)["items"]:
    print("  %-14s %-10s owner %s" % (a["name"] or a["id"][:12], a["state"], a["owner_name"]))'
say "curl $NODE/v1/artefacts/$BASE   (no token: chain data only; metadata is for readers)"
curl -s "$NODE/v1/artefacts/$BASE" | python -c '
import json, sys
d = json.load(sys.stdin)
print("  metadata:", d["metadata"], "-", (d.get("metadata_note") or "")[:90])'
say "the same with the read-only token"
curl -s -H "Authorization: Bearer $VIEWER" "$NODE/v1/artefacts/$BASE" | python -c '
import json, sys
print("  metadata fields:", ", ".join(sorted(json.load(sys.stdin)["metadata"] or {})))'
say "curl -X POST $NODE/v1/artefacts/$BASE/transitions -H 'Authorization: Bearer <viewer, read-only>' -d '{\"to_state\": \"retired\"}'"
curl -s -w '\n  -> HTTP %{http_code}: refused, nothing written\n' -X POST \
  "$NODE/v1/artefacts/$BASE/transitions" -H "Authorization: Bearer $VIEWER" \
  -H 'Content-Type: application/json' -d '{"to_state": "retired"}'
echo "dashboard: $NODE/  (API: $NODE/docs)"
kill "$NODE_PID" 2>/dev/null || true
wait "$NODE_PID" 2>/dev/null || true
if [ -n "$_node_prev_trap" ]; then eval "$_node_prev_trap"; else trap - EXIT; fi
unset NODE_PID _node_prev_trap
