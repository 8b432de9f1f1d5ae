#!/usr/bin/env bash
# Installs the interop peers the tests run against (components nobody on this project wrote):
# NHS Digital's mesh-sandbox and mesh-client, python hl7 (mllp_send), hl7apy, fhir.resources
# (with lxml, for its FHIR XML) and check-jsonschema (YAML against the schemas in schemas/, CI
# files against the official schemas it ships), pinned, into a virtual environment (by default
# .venv-interop at the repository root, where the tests look for it; LETTERGATE_PEERS
# overrides). scripts/test runs it through scripts/install-test-deps.sh.
#   usage: scripts/install-interop-peers.sh [VENV_DIR]   env: PYTHON=python3.11 (needs 3.11-3.13)
# Idempotent: if VENV_DIR/.interop-stamp matches the pins below and the imports work, exits in well under 1 s.
set -euo pipefail

cd "$(dirname "$0")/.."
VENV="${1:-${LETTERGATE_PEERS:-.venv-interop}}"
PY="${PYTHON:-python3}"

# Top-level peers (what the tests use).
REQS='mesh-sandbox==1.0.137
mesh-client==5.0.2
hl7==0.4.5
hl7apy==1.3.5
fhir.resources==8.3.0
lxml==6.1.3
check-jsonschema==0.39.0'

# Full transitive lock, verified together on Python 3.11.7 (used as pip constraints).
LOCK='annotated-doc==0.0.7
annotated-types==0.8.0
anyio==4.16.0
attrs==26.1.0
certifi==2026.10.18
cffi==2.1.1
charset-normalizer==3.5.2
check-jsonschema==0.39.0
click==8.5.1
cryptography==50.0.2
fastapi==0.150.0
fhir.resources==8.3.0
fhir_core==1.1.12
gunicorn==26.2.0
h11==0.16.0
hl7==0.4.5
hl7apy==1.3.5
idna==3.20
jsonschema==4.26.0
jsonschema-specifications==2025.9.1
lxml==6.1.3
MarkupSafe==3.0.4
mesh-client==5.0.2
mesh-sandbox==1.0.137
opentelemetry-api==1.45.2
pycparser==3.12
pydantic==2.14.3
pydantic_core==2.50.4
python-dateutil==2.9.0.post0
referencing==0.37.0
regress==2026.9.1
requests==2.34.2
rpds-py==2026.9.1
ruamel.yaml==0.19.1
six==1.17.0
starlette==1.10.0
types-python-dateutil==2.9.0.20261116
typing-inspection==0.4.5
typing_extensions==4.16.0
urllib3==2.8.0
uvicorn==0.54.0
Werkzeug==3.1.9'

STAMP_VALUE="$(printf '%s\n--\n%s\n' "$REQS" "$LOCK" | sha256sum | cut -d' ' -f1)"
STAMP="$VENV/.interop-stamp"
CHECK='import mesh_sandbox.api, mesh_client, hl7, hl7.client, hl7apy, fhir.resources.STU3.bundle, lxml, check_jsonschema'

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$STAMP_VALUE" && -x "$VENV/bin/python" ]] \
   && "$VENV/bin/python" -W ignore -c "import mesh_client, hl7, hl7apy" >/dev/null 2>&1; then
  echo "interop peers already installed in $VENV"
  exit 0
fi

"$PY" - <<'PYCHK'
import sys
if not ((3, 11) <= sys.version_info[:2] < (3, 14)):
    sys.exit(f"need Python 3.11-3.13 for mesh-sandbox, got {sys.version.split()[0]}")
PYCHK

if [[ ! -x "$VENV/bin/python" ]]; then
  "$PY" -m venv "$VENV"
fi

TMP="$(mktemp -d)"; trap 'rm -rf "$TMP"' EXIT
printf '%s\n' "$REQS" > "$TMP/requirements.txt"
printf '%s\n' "$LOCK" > "$TMP/constraints.txt"

"$VENV/bin/python" -m pip install --disable-pip-version-check -q -r "$TMP/requirements.txt" -c "$TMP/constraints.txt"
"$VENV/bin/python" -W ignore -c "$CHECK"
printf '%s\n' "$STAMP_VALUE" > "$STAMP"
echo "interop peers installed in $VENV: $("$VENV/bin/python" -m pip freeze --disable-pip-version-check | grep -iE '^(mesh-sandbox|mesh-client|hl7|hl7apy|fhir\.resources|lxml|check-jsonschema)==' | tr '\n' ' ')"
