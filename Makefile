# Shortcuts for the commands in README.md and CONTRIBUTING.md.
PY ?= .venv/bin/python
FAST = -n 2 -m "not slow and not slurm and not ui"

.PHONY: install lint docs docs-serve test test-fast bench cluster-up cluster-down

install:        ## virtual environment with the tested pins, the package and its test tools
	python3 -m venv .venv && .venv/bin/pip install -c constraints.txt -e '.[test]'

lint:           ## ruff and the import contracts (pyproject.toml [tool.importlinter]), as CI runs them
	$(PY) -m ruff check .
	.venv/bin/lint-imports

docs:           ## the documentation site into site/, failing on any broken link (as CI builds it)
	NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict

docs-serve:     ## the documentation site, live, at http://127.0.0.1:8000
	.venv/bin/mkdocs serve

test:           ## the whole suite as CI runs it, in 2 workers (SLURM and UI tests skip without their packages)
	$(PY) -m pytest -n 2 --dist loadgroup

test-fast:      ## the fast tier: no CLI end-to-end runs, no SLURM, no browser
	$(PY) -m pytest $(FAST)

bench:          ## where a training step's time and memory go (prints a table, writes bench.json)
	$(PY) -m seg58 bench

cluster-up:     ## a real single-node SLURM cluster under /tmp/seg58-slurm (root; Debian packages)
	scripts/slurm/start-local-cluster.sh /tmp/seg58-slurm

cluster-down:
	scripts/slurm/stop-local-cluster.sh /tmp/seg58-slurm
