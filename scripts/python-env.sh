#!/usr/bin/env bash
# Makes the project's Python environment: a virtual environment with exactly the versions in
# requirements.txt, at $PROBE_VENV (default: .venv in the clone). It is rebuilt only when
# requirements.txt changes. Prints the environment's python on stdout; the lab, the tests
# and .ci/run all use that one, never the system's packages.
set -euo pipefail
# A caller's PYTHONPATH or PYTHONHOME would let pip take other versions as installed.
unset PYTHONPATH PYTHONHOME
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${PROBE_VENV:-$root/.venv}
want=$(sha256sum "$root/requirements.txt" | cut -d' ' -f1)
if [[ -x $venv/bin/python && $(cat "$venv/.requirements.sha256" 2>/dev/null) == "$want" ]]; then
  echo "$venv/bin/python"
  exit 0
fi
command -v python3 >/dev/null || { echo "python-env: python3 is missing: apt-get install python3 python3-venv" >&2; exit 1; }
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  echo "python-env: python3 cannot make a virtual environment: apt-get install python3-venv" >&2
  exit 1
fi
echo "python-env: installing the pinned Python tools into $venv (moto, cfn-lint; a minute)" >&2
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$root/requirements.txt" >&2
echo "$want" >"$venv/.requirements.sha256"
echo "$venv/bin/python"
