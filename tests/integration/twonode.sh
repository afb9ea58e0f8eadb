#!/usr/bin/env bash
# Inside a private network namespace (only `lo`, so the host address is 127.0.0.1 and nothing
# leaves the machine) and PID namespace (its processes all end with it): a two-node Ray cluster,
# then `synshard build ... --ray-address` (its build.json says which node read what).
#   unshare -n -p -f --mount-proc bash twonode.sh PYTHON BUILD_ARGS...
set -euo pipefail
PY=$1; shift
ip link set lo up
RAY="$(dirname "$PY")/ray"
export RAY_USAGE_STATS_ENABLED=0 RAY_AUTH_MODE=token
export RAY_AUTH_TOKEN="$("$PY" -c 'import secrets; print(secrets.token_hex(32))')"
common=(--node-ip-address=127.0.0.1 --num-cpus=1 --object-store-memory=100000000
        --disable-usage-stats)
"$RAY" start --head --port=6390 --resources='{"head_node": 1}' "${common[@]}" >/dev/null
"$RAY" start --address=127.0.0.1:6390 --resources='{"second_node": 1}' "${common[@]}" >/dev/null
"$PY" -m synshard.cli build "$@" --ray-address 127.0.0.1:6390
