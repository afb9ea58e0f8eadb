#!/usr/bin/env bash
# Idempotent project setup: Debian build packages, .venv, a cached Pillow-SIMD wheel, the project.
# Called by `make setup` (and so by `make demo`, `make test`, `make bench`).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
VENV=.venv
PILLOW_SIMD_VERSION=12.1.1.post0
DEB_PKGS="build-essential libjpeg62-turbo-dev zlib1g-dev libpng-dev libwebp-dev libtiff-dev \
libfreetype-dev liblcms2-dev wordnet-base chromium iproute2"

log() { echo "setup: $*" >&2; }

# 1. System packages Pillow-SIMD builds against (JPEG, PNG, WebP, TIFF, zlib, FreeType, LittleCMS),
#    WordNet 3.0 for synsets/, Chromium for the browser tests of the report and the explorer
#    (driven by Playwright with this binary; never `playwright install`), iproute2's `ss` for
#    the test that the embedded Ray listens on loopback only.
missing=""
for p in $DEB_PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ]; then
    log "installing Debian packages:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
  else
    echo "setup: missing Debian packages; run as root:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y$missing" >&2
    exit 1
  fi
fi

# 2. The virtual environment.
[ -x "$VENV/bin/python" ] || { log "creating $VENV"; "$PY" -m venv "$VENV"; }
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
stamp_of() { cat pyproject.toml constraints.txt scripts/setup.sh | sha256sum | cut -c1-16; }
STAMP="$VENV/.synshard-setup-$(stamp_of)"

# 3. Pillow-SIMD: source-only on PyPI. Build once into a wheel cache keyed by the CPU features it
#    was compiled for, so an AVX2 wheel never lands on a CPU without AVX2.
if grep -qw avx2 /proc/cpuinfo 2>/dev/null; then simd=avx2; cc="cc -mavx2"; else simd=sse4; cc="cc"; fi
WHEELS=".cache/wheels/pillow-simd-$PILLOW_SIMD_VERSION-$(uname -m)-$simd"
have_simd() {
  "$VENV/bin/python" - "$PILLOW_SIMD_VERSION" <<'PYEOF' 2>/dev/null
import sys
from importlib import metadata
assert metadata.version("pillow-simd") == sys.argv[1]
try:
    metadata.version("pillow")
except metadata.PackageNotFoundError:
    pass
else:
    raise SystemExit("plain Pillow is installed beside pillow-simd")
PYEOF
}
if ! have_simd; then
  if ! ls "$WHEELS"/pillow_simd-*.whl >/dev/null 2>&1; then
    log "building pillow-simd $PILLOW_SIMD_VERSION ($simd) into $WHEELS (about 2 minutes, once)"
    mkdir -p "$WHEELS"
    "${PIP[@]}" install -U pip wheel setuptools
    CC="$cc" "${PIP[@]}" wheel --no-deps --no-binary :all: --no-cache-dir -w "$WHEELS" \
      "pillow-simd==$PILLOW_SIMD_VERSION"
  fi
  "${PIP[@]}" uninstall -y pillow >/dev/null 2>&1 || true
  "${PIP[@]}" install --force-reinstall --no-deps "$WHEELS"/pillow_simd-*.whl
fi

# 4. The project and its Python dependencies; constraints.txt forbids plain Pillow on every install.
if [ ! -f "$STAMP" ]; then
  log "installing synshard and dependencies into $VENV"
  "${PIP[@]}" install -c constraints.txt -e ".[build,test,torch]"
  rm -f "$VENV"/.synshard-setup-*
  touch "$STAMP"
fi

# 5. Bytecode of the project's own packages (the editable install's sources; pip compiled the
#    dependencies). Where PYTHONDONTWRITEBYTECODE is set, as on these machines, no process ever
#    writes it: the driver, every Ray worker and every test process compiled ~18,000 lines
#    again (importing a driver's modules took 0.50 CPU-s instead of 0.37). Only changed files
#    are compiled; a source edited since is compiled again in memory (Python checks each
#    source's mtime and size against its .pyc).
"$VENV/bin/python" -m compileall -q synshard shards ingest transforms synsets

# 6. Fail loudly unless PIL is pillow-simd with the codecs a build needs.
"$VENV/bin/python" - <<'PYEOF'
from importlib import metadata
import PIL
from PIL import features
dist = metadata.distribution("pillow-simd")
files = {str(f) for f in dist.files or ()}
if "PIL/__init__.py" not in files:
    raise SystemExit("setup: `import PIL` is not provided by pillow-simd")
missing = [f for f in ("jpg", "zlib", "webp", "littlecms2", "libtiff") if not features.check(f)]
if missing:
    raise SystemExit(f"setup: pillow-simd lacks {missing}; rebuild it (rm -r .cache/wheels)")
print(f"setup: ok (pillow-simd {PIL.__version__})")
PYEOF
