#!/usr/bin/env bash
# Run lettergate against the healthy stand-in once per structural variant and keep what it
# says: tests/standin/variants.sh BINARY [OUT_DIR]. Loopback only; every run has a timeout.
set -u
here="$(cd "$(dirname "$0")" && pwd)"
bin="${1:?usage: variants.sh BINARY [OUT_DIR]}"
out="${2:-$(mktemp -d /tmp/standin-variants.XXXXXX)}"
mkdir -p "$out"
export SCENARIOS="${SCENARIOS:-scenarios/outpatient/clinic_letter.yaml scenarios/outpatient/second_signer.yaml scenarios/outpatient/named_gp_left.yaml scenarios/outpatient/document_route.yaml scenarios/inpatient/discharge_summary.yaml scenarios/emergency/ed_discharge.yaml scenarios/emergency/several_attendances.yaml scenarios/death/in_hospital.yaml scenarios/routing/changed_practice.yaml scenarios/routing/merged_practice.yaml scenarios/routing/closed_practice.yaml scenarios/routing/no_registered_gp.yaml}"
while read -r name flags; do
  [ -z "$name" ] && continue
  # shellcheck disable=SC2086
  "$here/try.sh" "$bin" $flags > "$out/$name.txt" 2>&1
  echo "$name ($flags): exit $?" | tee -a "$out/summary.txt"
done <<'VARIANTS'
default --refs urn-uuid --recipient receiver --layout nested --format json
relative --refs relative
destination --recipient destination
no-recipient --recipient none
flat --layout flat
xml --format xml
xml-relative-flat-destination --format xml --refs relative --layout flat --recipient destination
mental-health --inpatient-as mental-health
own-ids-counter --own-ids counter
VARIANTS
echo "outputs in $out" >&2
