"""SHA-256 digests of an MLflow Model's files: recorded when seg58 logs it, checked before seg58
loads it by URI (`infer.model_uri=models:/NAME@champion`, `runs:/<id>/model`).

The model carries `artifacts/digests.json` (every file of its code, its weights and its config:
path -> SHA-256), and the run that logged it keeps the digest of that list in a tag: the artifact
store alone cannot vouch for itself, the tracking store vouches for it. A model whose files were
changed, added or removed after logging is refused, naming the file, before any weights are
read; one logged before seg58 recorded digests loads with a warning. MLflow's own files (MLmodel,
the environment files, the input example) are not covered. Digests show that a model is the one
its run logged, not that whoever logged it meant well."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from seg58.base.errors import CheckpointError

log = logging.getLogger(__name__)

DIGESTS_FILE = "artifacts/digests.json"  # where MLflow puts the pyfunc artifact "digests"
DIGESTS_TAG = "seg58.model.digests_sha256"  # on the run that logged the model
COVERED = ("code/", "artifacts/")  # besides these folders, every *.py at the model's top level


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def package_files(package: Path, under: str) -> dict[str, Path]:
    """A package folder as MLflow copies it into the model (`code/<name>/...`, no __pycache__)."""
    return {f"{under}/{package.name}/{p.relative_to(package).as_posix()}": p for p in sorted(package.rglob("*"))
            if p.is_file() and "__pycache__" not in p.relative_to(package).parts}


def write_digests(files: dict[str, Path], dst: Path) -> str:
    """digests.json of `files` (path in the model -> file here) at `dst`; returns its own digest."""
    dst.write_text(json.dumps({"algorithm": "sha256", "files": {k: sha256(v) for k, v in sorted(files.items())}},
                              indent=1) + "\n")
    return sha256(dst)


def source_run(client: Any, model_uri: str, fallback: str | None) -> str | None:
    """The run that logged the model, as the tracking store (not the model's own MLmodel) says."""
    ref = model_uri.split(":/", 1)[1].strip("/") if ":/" in model_uri else ""
    try:
        if model_uri.startswith("runs:/"):
            return ref.split("/", 1)[0]
        if model_uri.startswith("models:/"):
            if "@" in ref:
                return client.get_model_version_by_alias(*ref.rsplit("@", 1)).run_id or fallback
            name, _, version = ref.partition("/")
            if version.isdigit():
                return client.get_model_version(name, version).run_id or fallback
            if not version and name.startswith("m-"):  # a logged model's own id
                return client.get_logged_model(name).source_run_id or fallback
    except Exception:  # resolved once already by the download; keep what the model says
        return fallback
    return fallback


def _covered(rel: str) -> bool:
    return rel.startswith(COVERED) or ("/" not in rel and rel.endswith(".py"))


def verify(local: Path, recorded: str | None, model_uri: str, run_id: str | None) -> None:
    """Refuse (CheckpointError, one line naming the file) a model whose files differ from what
    was recorded when it was logged; warn about a model logged without digests."""
    listing = local / DIGESTS_FILE
    def refused(rel: str, what: str) -> CheckpointError:
        return CheckpointError(f"model {model_uri}: {rel} {what}: refused (the model's files are not those run "
                               f"{run_id} recorded when it logged the model)")

    if recorded is None:
        if listing.is_file():
            raise refused(DIGESTS_FILE, f"has no digest in its run's tag {DIGESTS_TAG}")
        log.warning("model %s: logged without digests of its files (before seg58 recorded them), loaded unchecked",
                    model_uri)
        return
    if not listing.is_file():
        raise refused(DIGESTS_FILE, "is missing")
    if sha256(listing) != recorded:
        raise refused(DIGESTS_FILE, "does not match its SHA-256 digest")
    files = json.loads(listing.read_text())["files"]
    for rel, digest in sorted(files.items()):
        path = local / rel
        if not path.is_file():
            raise refused(rel, "is missing")
        if sha256(path) != digest:
            raise refused(rel, "does not match its SHA-256 digest")
    present = sorted(p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file())
    for rel in present:
        if _covered(rel) and rel not in files and rel != DIGESTS_FILE:
            raise refused(rel, "was not in the model")


def checked_path(local: Path, rel: str, recorded: str | None, model_uri: str) -> Path:
    """A path MLmodel names, which must be one of the verified files (never outside the model)."""
    path, root = (local / rel).resolve(), local.resolve()
    if recorded is not None and (not path.is_relative_to(root) or not _covered(path.relative_to(root).as_posix())):
        raise CheckpointError(f"model {model_uri}: MLmodel names {rel}, not one of the model's verified files: refused")
    return path
