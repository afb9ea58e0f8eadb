#!/usr/bin/env bash
# Creates .venv-bench: plain Pillow + OpenCV (headless) + numpy, for the baselines that
# bench/bench_transform.py runs as a subprocess. They cannot live in .venv, whose `PIL` is
# pillow-simd (plain Pillow would overwrite it). Idempotent; no constraints file on purpose.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-bench
PY=${PYTHON:-python3}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
if ! "$VENV/bin/python" -c "import PIL, cv2, numpy" 2>/dev/null; then
  "$VENV/bin/python" -m pip --disable-pip-version-check -q install pillow opencv-python-headless numpy
fi
"$VENV/bin/python" -c "import PIL, cv2; print(f'venv_bench: Pillow {PIL.__version__}, OpenCV {cv2.__version__}')"
