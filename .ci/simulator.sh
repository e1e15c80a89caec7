# Sourced by the smoke tests: start_simulator [--dpop] builds tests/Mistral.Auth.SimulatorHost, starts it in the
# background (it serves until its standard input, held open on descriptor 3, closes) and sets $settings to the
# MistralAuth__* assignments that point a program at it, and $sim_pid for the caller's cleanup; a second call stops
# the first simulator. Needs $work.
sim_pid=""
sim_count=0
start_simulator() {
  if [ -n "$sim_pid" ]; then exec 3>&-; kill "$sim_pid" 2>/dev/null || true; wait "$sim_pid" 2>/dev/null || true; fi
  sim_count=$((sim_count + 1))
  dotnet build tests/Mistral.Auth.SimulatorHost -c Release >/dev/null
  mkfifo "$work/sim$sim_count.in"
  dotnet tests/Mistral.Auth.SimulatorHost/bin/Release/net10.0/Mistral.Auth.SimulatorHost.dll "$@" < "$work/sim$sim_count.in" > "$work/sim$sim_count.out" &
  sim_pid=$!
  exec 3>"$work/sim$sim_count.in"
  for _ in $(seq 1 200); do [ -s "$work/sim$sim_count.out" ] && break; sleep 0.05; done
  settings=$(head -1 "$work/sim$sim_count.out")
}
