"""ARTeFACT import from parquet in the Hugging Face schema (written here), and its protocols."""

from __future__ import annotations

import csv
import io
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from seg58.base.errors import DataError
from seg58.data.folder import load_pair, scan_folder
from seg58.data.splits import make_split
from seg58.data.synthetic import ensure_synthetic

MATERIALS = ["Paper", "Parchment", "Film emulsion"]


def _png(array: np.ndarray, fmt: str = "PNG", **options) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt, **options)
    return buf.getvalue()


def write_shards(folder, sizes):
    """Parquet shards shaped like danielaivanova/damaged-media: Image structs {bytes, path}."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = []
    for i, (w, h) in enumerate(sizes):
        mask = np.zeros((h, w), np.uint8)
        mask[: h // 2, : w // 3] = 1 + i % 15
        mask[-3:, :] = 255
        image = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        rows.append({
            "id": f"art/{i:03d}",  # ids are sanitized into file names
            "image": {"bytes": _png(image, "JPEG" if i % 2 else "PNG"), "path": f"{i}.x"},
            "annotation": {"bytes": _png(mask), "path": f"{i}.png"},
            "material": MATERIALS[i % 3], "content": "Line art" if i < 3 else "Artistic depiction",
            "type": "scan",
        })
    half = len(rows) // 2
    for n, part in enumerate((rows[:half], rows[half:])):
        pq.write_table(pa.Table.from_pylist(part), folder / f"train-{n:05d}-of-00002.parquet")


def test_import_resizes_keeps_labels_and_writes_metadata(cli, tmp_path):
    write_shards(tmp_path / "hf", [(3000, 2000), (640, 480), (500, 700), (320, 320), (800, 600), (300, 200)])
    out = tmp_path / "data" / "artefact"
    res = cli("import-artefact", "--source", str(tmp_path / "hf"), "--out", str(out), "--max-side", "512")
    assert res.returncode == 0, res.stderr[-2000:]
    samples = scan_folder(out)
    assert [s.id for s in samples] == [f"art_{i:03d}" for i in range(6)]
    assert [s.material for s in samples] == MATERIALS * 2
    image, mask = load_pair(samples[0])
    assert image.shape == (341, 512, 3) and mask.shape == (341, 512)  # 3000x2000 -> longest side 512
    assert set(np.unique(mask)) == {0, 1, 255}  # nearest: no invented labels at edges
    image, _ = load_pair(samples[5])
    assert image.shape == (200, 300, 3)  # small enough: original bytes kept
    rows = list(csv.DictReader((out / "metadata.csv").open()))
    assert rows[0] == {"id": "art_000", "material": "Paper", "content": "Line art", "type": "scan"}
    assert not [p for p in (tmp_path / "data").iterdir() if p.name.startswith(".")]  # no temp left

    # the imported folder passes check-data and trains end to end
    res = cli("check-data", "data=artefact", f"data.root={out}")
    assert res.returncode == 0 and "6 image/mask pairs" in res.stdout, res.stderr[-2000:]
    res = cli("data=artefact", f"data.root={out}", "data.img_size=64", "encoder=tiny", "trainer.epochs=1",
              "trainer.batch_size=2", "data.split=leave_one_material_out", "data.split_holdout=Parchment")
    assert res.returncode == 0, res.stderr[-2000:]

    # an existing output is never overwritten
    res = cli("import-artefact", "--source", str(tmp_path / "hf"), "--out", str(out))
    assert res.returncode != 0 and "exists" in res.stderr


@pytest.mark.parametrize(("kind", "key"), [("leave_one_material_out", "material"),
                                           ("leave_one_content_out", "content")])
def test_leave_one_out_splits_never_leak(cache_dir, kind, key):
    samples = scan_folder(ensure_synthetic(cache_dir, n_images=30, size=96, seed=0))
    for holdout in sorted({getattr(s, key) for s in samples}):
        train, val = make_split(samples, kind, 0.2, 0, holdout)
        assert {getattr(s, key) for s in val} == {holdout}
        assert holdout not in {getattr(s, key) for s in train}
        assert len(train) + len(val) == len(samples)


def test_unknown_holdout_lists_the_valid_values(cache_dir):
    samples = scan_folder(ensure_synthetic(cache_dir, n_images=30, size=96, seed=0))
    with pytest.raises(DataError, match="valid: \\['Canvas'"):
        make_split(samples, "leave_one_material_out", 0.2, 0, "Marble")


def test_augmented_set_is_3x_valid_and_split_without_leaks(cli, tmp_path, cache_dir):
    src = ensure_synthetic(cache_dir, n_images=20, size=64, seed=0)
    out = tmp_path / "data" / "artefact_augmented"
    res = cli("augment-artefact", "--source", str(src), "--out", str(out))
    assert res.returncode == 0, res.stderr[-2000:]
    samples = scan_folder(out)
    assert len(samples) == 60 and all(s.source for s in samples)
    flipped = [s for s in samples if s.id.endswith("__hflip")]
    if flipped:  # the mask went through the same transform as the image
        original = next(s for s in samples if s.id == flipped[0].source)
        assert np.array_equal(load_pair(flipped[0])[1], load_pair(original)[1][:, ::-1])
    train, val = make_split(samples, "random", 0.2, 0)
    assert {s.source for s in train}.isdisjoint({s.source for s in val})
    assert len(val) == 12  # 4 of 20 originals, each with its 2 copies
    mtime = (out / "metadata.csv").stat().st_mtime_ns
    assert cli("augment-artefact", "--source", str(src), "--out", str(out)).returncode == 0
    assert (out / "metadata.csv").stat().st_mtime_ns == mtime  # cached, not rewritten
    res = cli("check-data", "data=artefact_augmented", f"paths.data_dir={tmp_path / 'data'}")
    assert res.returncode == 0 and "60 image/mask pairs" in res.stdout, res.stderr[-2000:]


# Imports a shard and prints the importer process's own peak RSS (VmHWM, kB). Not ru_maxrss: a child
# started by vfork (Python's subprocess) inherits this big test process's high-water mark there.
PEAK_OF_IMPORT = ("import sys\nfrom seg58.data.artefact_import import import_artefact\n"
                  "print(import_artefact(sys.argv[1], sys.argv[2]))\n"
                  "print(next(line for line in open('/proc/self/status') if line.startswith('VmHWM')).split()[1])")


def _release_shard(path, groups: int, unused: bool) -> None:
    """Row groups of 2 scans, each a 10 MB PNG (stored uncompressed, like a photograph that does not
    compress); with `unused`, every row also carries the release's other columns, large: a 10 MB
    annotation_rgb PNG and two 10 MB descriptions (60 MB of them per row group)."""
    side = 1800
    image, mask = _png(np.zeros((side, side, 3), np.uint8), compress_level=0), _png(np.zeros((side, side), np.uint8))
    extra = {"annotation_rgb": {"bytes": image, "path": None},
             "damage_description": "the scan shows flaking paint and a tear. " * 250_000,
             "llava_description": "a painting of a harbour, cracked varnish. " * 250_000,
             "verified_description": "flaking paint"} if unused else {}
    writer = None
    for group in range(groups):
        table = pa.Table.from_pylist([
            {"id": f"s{i}", "image": {"bytes": image, "path": None}, "annotation": {"bytes": mask, "path": None},
             "material": MATERIALS[i % 3], "content": "Line art", "type": "scan", **extra}
            for i in (2 * group, 2 * group + 1)])
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)  # one row group
    writer.close()


def test_import_reads_only_the_needed_columns_one_row_group_at_a_time(tmp_path):
    peaks = {}
    for groups, unused in [(3, False), (3, True), (6, False)]:
        source = tmp_path / f"hf-{groups}-{unused}"
        source.mkdir()
        _release_shard(source / "train-00000-of-00001.parquet", groups, unused)
        assert pq.ParquetFile(source / "train-00000-of-00001.parquet").num_row_groups == groups
        out = tmp_path / f"out-{groups}-{unused}"
        done = subprocess.run([sys.executable, "-c", PEAK_OF_IMPORT, str(source), str(out)],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        written, peak_kb = done.stdout.split()
        assert written == str(2 * groups) and len(scan_folder(out)) == 2 * groups
        peaks[groups, unused] = int(peak_kb) / 1024
    # The unused columns would hold >= 60 MB (one row group of them) more, and reading the 6-group
    # shard whole >= 58 MB (its 3 extra row groups of scans) more; allocator noise is a few MB.
    assert peaks[3, True] - peaks[3, False] < 20, peaks
    assert peaks[6, False] - peaks[3, False] < 20, peaks
