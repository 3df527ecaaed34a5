# The warm agent (issue 9): commands run in a child forked from a process that has the
# ledger's libraries loaded. Sourced by demo/run.sh: expects DEMO_OUT, the demo home and
# the helpers step/say/run/jget. The agent serves the rest of the demo; run.sh stops it.

step "Fast commands: a warm agent forks each command with the libraries already loaded"
ms() { local t0; t0=$(date +%s%N); "$@" >/dev/null; echo "$(( ($(date +%s%N) - t0) / 1000000 )) ms"; }
for i in 1 2 3 4; do printf 'x\n%s\n' "$i" > "$DEMO_OUT/batch$i.csv"; done
say "MLTRAIL_AGENT=off mltrail --as alice register batch1.csv --kind dataset   # in place"
echo "-> $(ms env MLTRAIL_AGENT=off mltrail --as alice register "$DEMO_OUT/batch1.csv" --kind dataset)"
say "MLTRAIL_AGENT=off mltrail show digits"
echo "-> $(ms env MLTRAIL_AGENT=off mltrail show digits)"
run mltrail agent start
for i in 2 3 4; do
  say "mltrail --as alice register batch$i.csv --kind dataset   # in the agent"
  echo "-> $(ms mltrail --as alice register "$DEMO_OUT/batch$i.csv" --kind dataset)"
done
say "mltrail show digits"
echo "-> $(ms mltrail show digits)"
run mltrail agent status
