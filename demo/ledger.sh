# Sourced by demo/run.sh after its steps (uses its step/say/run/jget helpers and $DS).
# Owners, and a ledger check that finds a forged index and a damaged chain.
step "L. Owners: a developer cannot move another developer's model; check finds forgeries"
echo "owned by alice" > "$DEMO_OUT/owned.txt"
OWNED=$(mltrail --as alice register "$DEMO_OUT/owned.txt" --kind model --parent "$DS" --name owned --json | jget artefact_id)
say "mltrail --as mallory transition $OWNED trained   # mallory is a developer, but not the owner"
rc=0; mltrail --as mallory transition "$OWNED" trained || rc=$?
[ "$rc" -eq 2 ] && echo "-> refused (exit $rc), nothing written"
run mltrail --as alice transition "$OWNED" trained
FORGED="$DEMO_OUT/forged-home"
rm -rf "$FORGED"; cp -r "$MLTRAIL_HOME" "$FORGED"; rm "$FORGED/pins.json"
say "mltrail --home $FORGED ledger check   # pins.json deleted: never re-created silently"
rc=0; mltrail --home "$FORGED" ledger check || rc=$?
[ "$rc" -eq 1 ] && echo "-> exit $rc"
run mltrail --home "$FORGED" ledger trust --i-accept-unverifiable-history
run mltrail --home "$FORGED" ledger check
rm -rf "$FORGED"; cp -r "$MLTRAIL_HOME" "$FORGED"
python - "$FORGED/index.sqlite" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("UPDATE artefacts SET state=6 WHERE name='owned'")  # 'approved', in the index only
db.commit()
PY
say "mltrail --home $FORGED ledger check   # an index row edited to 'approved'"
rc=0; mltrail --home "$FORGED" ledger check || rc=$?
[ "$rc" -eq 1 ] && echo "-> exit $rc"
python - "$FORGED/chain.sqlite" <<'PY'
import os, sys
os.truncate(sys.argv[1], os.path.getsize(sys.argv[1]) // 2)
PY
say "mltrail --home $FORGED ledger check   # chain.sqlite truncated"
rc=0; mltrail --home "$FORGED" ledger check || rc=$?
[ "$rc" -eq 1 ] && echo "-> exit $rc"
rm -rf "$FORGED"
