#!/usr/bin/env bash
# hydra-optuna-sweeper's own test suite, run against seg58's sweeper with only the sweeper's name
# changed (optuna -> seg58) and its two calls into HOS internals pointed at seg58.sweep.space.
# Environment fixes only: the examples get version_base=None (as on HOS's 1.3 branch: without it
# Hydra 1.3 warns, fatal under the suite's -Werror); the test of HOS's private MOTPESamplerConfig
# class is left out. Usage: [HYDRA_REPO=<a clone or URL>] scripts/hos_suite.sh [hydra commit]
set -euo pipefail
commit="${1:-2c03d1b925fe239e0b67b923699d4027685f198f}"
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
git clone -q "${HYDRA_REPO:-https://github.com/facebookresearch/hydra}" "$work/hydra"
git -C "$work/hydra" checkout -q "$commit"
cd "$work/hydra/plugins/hydra_optuna_sweeper"
rm -rf hydra_plugins  # HOS itself stays out: the suite must find seg58's sweeper
grep -rl "hydra/sweeper: optuna\|hydra/sweeper=optuna" example tests |
  xargs sed -i 's|hydra/sweeper: optuna|hydra/sweeper: seg58|; s|hydra/sweeper=optuna|hydra/sweeper=seg58|'
sed -i 's/config_name="config")/config_name="config", version_base=None)/' example/*.py
sed -i 's/^from hydra_plugins.hydra_optuna_sweeper import _impl$/from seg58.sweep import space as _impl/;
        /^from hydra_plugins.hydra_optuna_sweeper.config import MOTPESamplerConfig$/d;
        s/^from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper$/from hydra_plugins.seg58_sweeper.sweeper import Seg58Sweeper as OptunaSweeper/' \
  tests/test_optuna_sweeper_plugin.py
PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" "${PYTHON:-$root/.venv/bin/python}" -m pytest -q -p no:cacheprovider \
  -k "not test_motpe_sampler_removed" tests
