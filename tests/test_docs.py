"""The docs as a site: `mkdocs build --strict` (a broken link or an unlisted page fails), a short
README that still carries the two commands CI runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
INSTALL_AND_RUN = ("python3 -m venv .venv && .venv/bin/pip install -c constraints.txt -e . && "
                   ".venv/bin/python -m seg58 -m encoder=resnet50,convnext_tiny,swin")
INSTALL_AND_TEST = ("python3 -m venv .venv && .venv/bin/pip install -c constraints.txt -e '.[test]' && "
                    ".venv/bin/ruff check . && .venv/bin/python -m pytest -n 2 --dist loadgroup")


def test_the_site_builds_strictly(tmp_path):
    out = subprocess.run([str(Path(sys.executable).parent / "mkdocs"), "build", "--strict", "--site-dir",
                          str(tmp_path / "site")], cwd=REPO, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "site" / "architecture" / "index.html").is_file()
    assert "imgs/s" in (tmp_path / "site" / "benchmarks" / "index.html").read_text()  # BENCHMARKS.md, included


def test_the_readme_is_short_and_keeps_the_two_commands():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    assert INSTALL_AND_RUN in readme and INSTALL_AND_TEST in readme
    assert INSTALL_AND_TEST in (REPO / ".ci" / "run").read_text()  # CI runs exactly the README's test command


def test_every_server_a_recipe_starts_listens_on_this_machine_only():
    """Issue #21: no command in the docs opens a server to the network (`--host 0.0.0.0`, `-h ::`);
    seg58's own server (the dashboard) is tested on 127.0.0.1 in tests/sweep/test_dashboard.py."""
    import re

    blocks = [b for page in [REPO / "README.md", *(REPO / "docs").glob("*.md")]
              for b in re.findall(r"```(?:bash|sh)?\n(.*?)```", page.read_text(), re.S)]
    servers = [line for b in blocks for line in b.splitlines() if re.search(r"\b(mlflow (server|ui)|serve)\b", line)]
    wide = re.compile(r"(--host|-h)[ =](0\.0\.0\.0|::)(?=\s|$)")
    assert wide.search("mlflow server --host 0.0.0.0 --port 5000") and wide.search("mlflow ui -h ::")
    assert len(servers) >= 3 and not [s for s in servers if wide.search(s)]


def test_every_page_is_listed_in_the_readme_and_on_the_home_page():
    pages = sorted(p.name for p in (REPO / "docs").glob("*.md") if p.name != "index.md")
    readme, home = (REPO / "README.md").read_text(), (REPO / "docs" / "index.md").read_text()
    assert [p for p in pages if f"(docs/{p})" not in readme] == []
    assert [p for p in pages if f"({p})" not in home] == []
