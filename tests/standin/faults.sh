#!/usr/bin/env bash
# Baseline the healthy stand-in, check it twice, then check it once per fault:
#   tests/standin/faults.sh BINARY [OUT_DIR]. Loopback only; every run has a timeout.
set -u
here="$(cd "$(dirname "$0")" && pwd)"
bin="${1:?usage: faults.sh BINARY [OUT_DIR]}"
out="${2:-$(mktemp -d /tmp/standin-faults.XXXXXX)}"
mkdir -p "$out"
export SNAPSHOTS="$out/snapshots"
export SCENARIOS="${SCENARIOS:-scenarios/outpatient/clinic_letter.yaml scenarios/inpatient/discharge_summary.yaml scenarios/emergency/ed_discharge.yaml scenarios/emergency/several_attendances.yaml scenarios/death/in_hospital.yaml scenarios/routing/changed_practice.yaml scenarios/routing/merged_practice.yaml}"
run() { # name, stand-in flags..., -- run args
  local name="$1"; shift
  "$here/try.sh" "$bin" "$@" > "$out/$name.txt" 2>&1
  echo "$name ($*): exit $?" | tee -a "$out/summary.txt"
}
run healthy-accept -- --accept
run healthy-check-1 -- --check
run healthy-check-2 -- --check
while read -r name flags; do
  [ -z "$name" ] && continue
  # shellcheck disable=SC2086
  run "$name" $flags -- --check
done <<'FAULTS'
silent-practice --fault silent-practice=B82002
previous-practice --fault previous-practice
duplicate --fault duplicate
stop-emergency --fault stop-kind=emergency
stop-death --fault stop-kind=death
preliminary --fault preliminary
dated-when-sent --fault dated-when-sent --dispatch-delay 2
copy-after-death --fault copy-after-death
no-fullurl --fault no-fullurl
FAULTS
echo "outputs in $out" >&2
