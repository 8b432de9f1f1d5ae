#!/usr/bin/env bash
# Run lettergate against the stand-in EHR, on loopback only, and stop both by itself.
#
#   tests/standin/try.sh BINARY [STAND-IN FLAGS...] [-- LETTERGATE RUN ARGS...]
#
# Without run args it runs `BINARY run --target tests/standin/target.yaml --check` on
# scenarios/outpatient/clinic_letter.yaml. Env: SCENARIOS (space-separated paths),
# SNAPSHOTS (snapshot folder, default a temporary one), WORK_DIR, TIMEOUT (seconds, 300).
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

cd "$repo"
for port in 18800 18702 18703; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "try.sh: 127.0.0.1:$port is already in use" >&2; exit 2
  fi
done
timeout "${TIMEOUT:-300}" "$python" "$here/ehr.py" --directory scenarios/fixtures/common.yaml \
  "${standin_flags[@]}" 2> "$tmp/standin.log" &
standin=$!
trap 'kill "$standin" 2>/dev/null; wait "$standin" 2>/dev/null' EXIT
for _ in $(seq 50); do
  (exec 3<>/dev/tcp/127.0.0.1/18800) 2>/dev/null && break
  sleep 0.1
done
timeout "${TIMEOUT:-300}" "$bin" run --target tests/standin/target.yaml --snapshots "$snapshots" \
  --work-dir "$work_dir" "${run_args[@]}" "${scenarios[@]}"
rc=$?
echo "try.sh: lettergate exited $rc; stand-in log: $tmp/standin.log" >&2
exit $rc
