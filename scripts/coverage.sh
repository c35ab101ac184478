#!/usr/bin/env bash
# Line coverage of seg58/ and hydra_plugins/ over the whole suite, counting every process the tests
# start (CLI runs, local jobs, SLURM jobs on this machine, xdist workers): coverage.py's
# `patch = subprocess`. Arguments go to pytest.
#
#   scripts/coverage.sh                    # the whole suite, as CI runs it
#   scripts/coverage.sh -m "not slurm"     # a part of it
#
# Hydra takes a trace function (coverage's) for a debugger and then prints full tracebacks where it
# would report an error in one line; while measuring, a .pth file in the venv tells it otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
OUT=${COVERAGE_DIR:-$PWD/.coverage-data}
rm -rf "$OUT" && mkdir -p "$OUT"
cat > "$OUT/rc" <<RC
[run]
source = seg58, hydra_plugins
parallel = true
patch = subprocess
data_file = $OUT/.coverage
sigterm = true
RC
SITE=$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
PTH="$SITE/zz_seg58_coverage_hydra.pth"
echo 'import hydra._internal.utils as _u; _u.is_under_debugger = lambda: False' > "$PTH"
trap 'rm -f "$PTH"' EXIT
status=0
"$VENV/bin/coverage" run --rcfile="$OUT/rc" -m pytest "$@" || status=$?
"$VENV/bin/coverage" combine --rcfile="$OUT/rc" -q
"$VENV/bin/coverage" report --rcfile="$OUT/rc" --precision=2 | tail -n 1
echo "per file: $VENV/bin/coverage report --rcfile=$OUT/rc"
exit $status
