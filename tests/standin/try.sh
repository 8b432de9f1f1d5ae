#!/usr/bin/env bash
# Run lettergate against the stand-in EHR, on loopback only, and stop both by itself.
#
#   tests/standin/try.sh BINARY [STAND-IN FLAGS...] [-- LETTERGATE RUN ARGS...]
#
# Without run args it runs `BINARY run --target tests/standin/target.yaml --check` on
# scenarios/outpatient/clinic_letter.yaml. Env: SCENARIOS (space-separated paths),
# SNAPSHOTS (snapshot folder, default a temporary one), WORK_DIR, TIMEOUT (seconds, 300),
# FHIR_PORT, MESH_PORT, HTTP_PORT (defaults 18800, 18702, 18703, as in target.yaml; other
# ports run a copy of target.yaml rewritten to them, so two runs can share a machine).
set -u
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
bin="${1:?usage: try.sh BINARY [STAND-IN FLAGS...] [-- RUN ARGS...]}"
shift
standin_flags=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do standin_flags+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
run_args=("$@")
[ ${#run_args[@]} -eq 0 ] && run_args=(--check)
python="$repo/.venv-interop/bin/python"
[ -x "$python" ] || { echo "try.sh: $python not found (scripts/install-interop-peers.sh)" >&2; exit 2; }
tmp="$(mktemp -d /tmp/standin-try.XXXXXX)"
snapshots="${SNAPSHOTS:-$tmp/snapshots}"
work_dir="${WORK_DIR:-$tmp/work}"
read -r -a scenarios <<< "${SCENARIOS:-scenarios/outpatient/clinic_letter.yaml}"
export STANDIN_MESH_SHARED_KEY=TestKey STANDIN_MESH_PASSWORD=password STANDIN_PRACTICE_PASSWORD=practice

fhir_port="${FHIR_PORT:-18800}" mesh_port="${MESH_PORT:-18702}" http_port="${HTTP_PORT:-18703}"
target="tests/standin/target.yaml"
cd "$repo"
if [ "$fhir_port:$mesh_port:$http_port" != "18800:18702:18703" ]; then
  target="$tmp/target.yaml"
  sed -e "s/127.0.0.1:18800/127.0.0.1:$fhir_port/; s/127.0.0.1:18702/127.0.0.1:$mesh_port/" \
      -e "s/127.0.0.1:18703/127.0.0.1:$http_port/" tests/standin/target.yaml > "$target"
fi
for port in "$fhir_port" "$mesh_port" "$http_port"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "try.sh: 127.0.0.1:$port is already in use" >&2; exit 2
  fi
done
timeout "${TIMEOUT:-300}" "$python" "$here/ehr.py" --directory scenarios/fixtures/common.yaml \
  --port "$fhir_port" --mesh-url "http://127.0.0.1:$mesh_port" \
  --print-url "http://127.0.0.1:$http_port" --docman-url "http://127.0.0.1:$http_port" \
  "${standin_flags[@]}" 2> "$tmp/standin.log" &
standin=$!
trap 'kill "$standin" 2>/dev/null; wait "$standin" 2>/dev/null' EXIT
for _ in $(seq 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$fhir_port") 2>/dev/null && break
  sleep 0.1
done
timeout "${TIMEOUT:-300}" "$bin" run --target "$target" --snapshots "$snapshots" \
  --work-dir "$work_dir" "${run_args[@]}" "${scenarios[@]}"
rc=$?
echo "try.sh: lettergate exited $rc; stand-in log: $tmp/standin.log" >&2
exit $rc
