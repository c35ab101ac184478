"""Dataset lineage: a digest of exactly the files a run reads, and a profile of what they hold.

The digest covers every image, mask and metadata.csv by relative path and SHA-256 of the
bytes, so a changed pixel, a renamed, added or removed pair all change it, while a copy of the
same folder elsewhere keeps it. Hashing streams each file in chunks on a few threads; results
are cached per folder, keyed by (size, mtime_ns, ctime_ns, inode), so a sweep's jobs and later
evaluations only stat the files. ctime cannot be set from user space: any rewrite, even one
that restores mtime (`cp -p`, `touch -r`), invalidates the entry.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from seg58.base.classes import CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES
from seg58.data.folder import Sample
from seg58.data.splits import SplitSpec

log = logging.getLogger(__name__)

DIGEST_CHARS = 12  # MLflow suggests short digests; 48 bits tell datasets apart
CACHE_VERSION = 1
CHUNK = 1 << 20  # bytes read per hash update
LABELS = [*range(NUM_CLASSES), IGNORE_INDEX]  # per-mask pixel counts, in this order


@dataclass(frozen=True)
class FileRecord:
    rel: str  # path relative to the dataset folder, "/"-separated
    size: int
    sha256: str
    counts: tuple[int, ...] | None = None  # masks: pixels per label of LABELS


@dataclass(frozen=True)
class Lineage:
    """What a run trained on: digest, folder, split and the data's profile."""

    root: Path
    digest: str
    split: str  # e.g. "random 0.2 seed 0", "leave_one_material_out Paper"
    n_train: int
    n_val: int
    n_bytes: int
    class_shares: dict[str, float] = field(default_factory=dict)  # of labelled (non-ignore) pixels
    ignore_share: float = 0.0  # of all mask pixels
    seconds: float = 0.0  # time spent computing it (hashing, decoding masks not in the cache)

    @property
    def name(self) -> str:
        """Folder and split: MLflow reuses a dataset by (name, digest) within an experiment, so
        runs with other splits of the same files must not share one name."""
        return f"{self.root.name} ({self.split})"

    def profile(self) -> dict[str, Any]:
        return {
            "source": str(self.root), "digest": self.digest, "split": self.split,
            "images": self.n_train + self.n_val, "train_images": self.n_train, "val_images": self.n_val,
            "bytes": self.n_bytes, "ignore_pixel_share": round(self.ignore_share, 6),
            "class_pixel_share": {k: round(v, 6) for k, v in self.class_shares.items()},
        }


def split_label(spec: SplitSpec) -> str:
    kind = str(getattr(spec.kind, "value", spec.kind))
    if kind == "random":
        return f"random {spec.val_fraction:g} seed {spec.seed}"
    return f"{kind} {spec.holdout}"


def dataset_files(root: Path, samples: Sequence[Sample]) -> tuple[list[Path], list[Path]]:
    """(images + metadata.csv, masks): every file a run reads, in a fixed order."""
    plain = [s.image for s in samples]
    if (root / "metadata.csv").is_file():
        plain.append(root / "metadata.csv")
    return sorted(plain), sorted(s.mask for s in samples)


def _stat_key(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _cache_path(cache_dir: Path, root: Path) -> Path:
    return cache_dir / "lineage" / f"{hashlib.sha1(str(root).encode()).hexdigest()[:16]}.json"


def _load_cache(path: Path | None) -> dict[str, list]:
    if path is None or not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
        return data["files"] if data.get("version") == CACHE_VERSION else {}
    except (OSError, ValueError, KeyError, TypeError):  # unreadable or foreign: start over
        return {}


def _save_cache(path: Path | None, root: Path, files: dict[str, list]) -> None:
    """Atomically; concurrent jobs may each write the same content. Failing to cache (a
    read-only cache folder) only costs the next run a re-hash."""
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"version": CACHE_VERSION, "root": str(root), "files": files}))
        os.replace(tmp, path)
    except OSError as e:
        log.debug("lineage cache %s not written: %s", path, e)


def _stream_sha256(f: io.BufferedReader) -> str:
    """Constant memory for any file size (hashlib.file_digest is Python >= 3.11 only)."""
    h, buf = hashlib.sha256(), bytearray(CHUNK)
    view = memoryview(buf)
    while n := f.readinto(buf):
        h.update(view[:n])
    return h.hexdigest()


def _mask_counts(data: bytes) -> tuple[int, ...]:
    with Image.open(io.BytesIO(data)) as mk:
        counts = np.bincount(np.asarray(mk).ravel(), minlength=256)
    return tuple(int(counts[label]) for label in LABELS)


def _record(path: Path, is_mask: bool, with_counts: bool, cached: list | None) -> tuple[list, bool]:
    """(cache entry, whether the file was read). Masks are read whole (hash + decode from the
    same bytes); other files are streamed through the hash in chunks."""
    key = _stat_key(path)
    if cached and cached[:4] == key and (cached[5] is not None or not (is_mask and with_counts)):
        return cached, False
    with path.open("rb") as f:
        if is_mask and with_counts:
            data = f.read()
            sha, counts = hashlib.sha256(data).hexdigest(), list(_mask_counts(data))
        else:
            sha, counts = _stream_sha256(f), None
    return [*key, sha, counts], True


def file_records(root: str | Path, samples: Sequence[Sample], cache_dir: str | Path | None = None,
                 threads: int = 4, with_counts: bool = True) -> list[FileRecord]:
    """Hash (and for masks, count labels in) every file the samples name, reusing the cache
    for files whose stat is unchanged."""
    root = Path(root)
    cache_path = _cache_path(Path(cache_dir), root.resolve()) if cache_dir is not None else None
    cache = _load_cache(cache_path)
    plain, masks = dataset_files(root, samples)
    jobs = [(p, False) for p in plain] + [(p, True) for p in masks]
    # names as the run sees them (a symlinked file counts as its link's name, its content as its target's)
    rels = [p.relative_to(root).as_posix() if p.is_relative_to(root) else str(p) for p, _ in jobs]
    with ThreadPoolExecutor(max(1, threads)) as pool:  # hashlib and PNG decoding release the GIL
        results = list(pool.map(lambda j: _record(jobs[j][0], jobs[j][1], with_counts, cache.get(rels[j])),
                                range(len(jobs))))
    if any(read for _, read in results) or set(cache) - set(rels):
        _save_cache(cache_path, root.resolve(), {rel: entry for rel, (entry, _) in zip(rels, results, strict=True)})
    return [FileRecord(rel, entry[0], entry[4], tuple(entry[5]) if entry[5] is not None else None)
            for rel, (entry, _) in zip(rels, results, strict=True)]


def digest_of(records: Sequence[FileRecord]) -> str:
    """Relative paths, sizes and content hashes, sorted: independent of where the folder lives."""
    h = hashlib.sha256()
    for r in sorted(records, key=lambda r: r.rel):
        h.update(f"{r.rel}\t{r.size}\t{r.sha256}\n".encode())
    return h.hexdigest()[:DIGEST_CHARS]


def content_digest(root: str | Path, samples: Sequence[Sample], cache_dir: str | Path | None = None,
                   threads: int = 4) -> str:
    """The digest alone (no mask decoding): for checking today's data against a run's."""
    return digest_of(file_records(root, samples, cache_dir, threads, with_counts=False))


def dataset_lineage(root: str | Path, train: Sequence[Sample], val: Sequence[Sample], split: SplitSpec,
                    cache_dir: str | Path | None = None, threads: int = 4) -> Lineage:
    """Digest + profile of a split dataset; class shares are counted at full mask resolution."""
    started = time.perf_counter()
    records = file_records(root, [*train, *val], cache_dir, threads, with_counts=True)
    counts = np.zeros(len(LABELS), np.int64)
    for r in records:
        if r.counts is not None:
            counts += np.asarray(r.counts, np.int64)
    labelled = max(1, int(counts[:NUM_CLASSES].sum()))
    return Lineage(
        root=Path(root).resolve(), digest=digest_of(records), split=split_label(split),
        n_train=len(train), n_val=len(val), n_bytes=sum(r.size for r in records),
        class_shares={name: float(counts[i]) / labelled for i, name in enumerate(CLASS_NAMES)},
        ignore_share=float(counts[-1]) / max(1, int(counts.sum())),
        seconds=time.perf_counter() - started,
    )


def data_changed_warning(run_id: str, run_digest: str | None, run_root: str | None, digest: str,
                         root: str | Path) -> str | None:
    """A message naming both digests when today's data is not the data the run used; None
    when it is (or the run recorded no digest: nothing to compare)."""
    if not run_digest or run_digest == digest:
        return None
    where = (f"the same folder {root} has changed" if run_root and Path(run_root) == Path(root)
             else f"run's folder {run_root or '(not recorded)'}, today's folder {root}")
    return (f"data differs from the data of run {run_id}: run's dataset digest {run_digest}, today's {digest} "
            f"({where}); results are not comparable with the run's")
