# Sourced by the smoke tests: start_simulator builds tests/Mistral.Auth.SimulatorHost, starts it in the background
# (it serves until its standard input, held open on descriptor 3, closes) and sets $settings to the MistralAuth__*
# assignments that point a program at it, and $sim_pid for the caller's cleanup. Needs $work.
sim_pid=""
start_simulator() {
  dotnet build tests/Mistral.Auth.SimulatorHost -c Release >/dev/null
  mkfifo "$work/sim.in"
  dotnet tests/Mistral.Auth.SimulatorHost/bin/Release/net10.0/Mistral.Auth.SimulatorHost.dll < "$work/sim.in" > "$work/sim.out" &
  sim_pid=$!
  exec 3>"$work/sim.in"
  for _ in $(seq 1 200); do [ -s "$work/sim.out" ] && break; sleep 0.05; done
  settings=$(head -1 "$work/sim.out")
}
