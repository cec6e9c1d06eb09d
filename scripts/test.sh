#!/usr/bin/env bash
# Run the test suite: installs vagen from this checkout when it is not importable from
# here, then ruff and pytest. Extra arguments go to pytest (e.g. -k rewards).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY=${PYTHON:-python3}
# Tests run tiny models next to env servers and video decoders: one BLAS thread each is
# faster than oversubscribing the cores (set OMP_NUM_THREADS to override).
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

installed_here() {
  "$PY" - "$ROOT" <<'PY' 2>/dev/null
import os, sys
from importlib.metadata import entry_points
import vagen, torch, transformers, flask, av, selenium  # noqa: F401
here = os.path.dirname(os.path.dirname(os.path.abspath(vagen.__file__))) == sys.argv[1]
# An install older than the verl plugin entry point (the critic) must be refreshed.
plugin = any(ep.value.startswith("vagen.") for ep in entry_points(group="verl.plugins"))
sys.exit(0 if here and plugin else 1)
PY
}
if ! installed_here; then
  bash install.sh
fi
# The trajectory viewer's browser test drives Debian's chromium through its chromedriver
# (never a browser a tool downloads itself). When they are missing they are installed in
# the background while the suite runs; the browser test, which runs last, waits for them.
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    export VAGEN_BROWSER_INSTALL_LOG="${TMPDIR:-/tmp}/vagen-browser-install.log"
    echo "[test] installing Debian's chromium and chromium-driver in the background" \
         "(log: $VAGEN_BROWSER_INSTALL_LOG)" >&2
    ( set +e; { apt-get install -y -q chromium chromium-driver \
        || { apt-get update -q && apt-get install -y -q chromium chromium-driver; }; } \
      > "$VAGEN_BROWSER_INSTALL_LOG" 2>&1; echo "exit $?" >> "$VAGEN_BROWSER_INSTALL_LOG" ) &
  else
    echo "[test] chromium and chromedriver are missing, so the viewer's browser test fails:" \
         "install Debian's chromium and chromium-driver" >&2
  fi
fi
"$PY" -m ruff check vagen tests benchmarks
set +e
"$PY" -m pytest -q "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "test.sh: pytest collected no tests" >&2
  exit 1
fi
exit "$rc"
