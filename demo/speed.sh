# Command speed (issue 20): each command runs in its own process; a write and a read are
# timed in place. Sourced by demo/run.sh: expects DEMO_OUT, the demo home and the helpers
# step/say. bench/cli.py measures the same against `python -c pass`.

step "Fast commands in their own process: a write and a read, timed"
ms() { local t0; t0=$(date +%s%N); "$@" >/dev/null; echo "$(( ($(date +%s%N) - t0) / 1000000 )) ms"; }
for i in 1 2; do printf 'x\n%s\n' "$i" > "$DEMO_OUT/batch$i.csv"; done
for i in 1 2; do
  say "mltrail --as alice register batch$i.csv --kind dataset"
  echo "-> $(ms mltrail --as alice register "$DEMO_OUT/batch$i.csv" --kind dataset)"
done
say "mltrail show digits"
echo "-> $(ms mltrail show digits)"
