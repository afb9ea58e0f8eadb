#!/usr/bin/env bash
# Creates (once) .venv-peers/NAME from the pinned bench/peers/requirements/NAME.txt and prints the
# path of its python. Each peer lives in its own venv: none of them shares .venv, whose PIL is
# pillow-simd. Idempotent (a stamp of the requirements file); exits non-zero with one line if the
# peer cannot be installed.
set -euo pipefail
cd "$(dirname "$0")/../.."
name=${1:?usage: bench/peers/venv.sh NAME}
req=bench/peers/requirements/$name.txt
[ -f "$req" ] || { echo "peers: no pinned requirements for '$name' ($req)" >&2; exit 2; }
venv=.venv-peers/$name
stamp="$venv/.stamp-$(sha256sum "$req" | cut -c1-16)"
PY=${PYTHON:-python3}
if [ ! -f "$stamp" ]; then
  [ -x "$venv/bin/python" ] || "$PY" -m venv "$venv"
  log="$venv/install.log"
  if ! "$venv/bin/python" -m pip --disable-pip-version-check install -r "$req" >"$log" 2>&1; then
    echo "peers: could not install $req into $venv (see $log: $(grep -m1 -E 'ERROR' "$log" || tail -n1 "$log"))" >&2
    exit 1
  fi
  rm -f "$venv"/.stamp-*
  touch "$stamp"
fi
echo "$venv/bin/python"
