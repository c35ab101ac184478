"""Native-resolution prediction (`seg58 predict infer.resolution=native`): the band-by-band sliding
window equals the whole-image one, with and without TTA; the mask is a full-size tiled, compressed
TIFF; scans are read as uint8 RGB whatever the file holds; the command end to end."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import tifffile
import torch
from conftest import make
from PIL import Image

from seg58.base.choices import Tta
from seg58.base.errors import ConfigError
from seg58.config import factory
from seg58.config.config_checks import config_problems
from seg58.data.scans import RowFile, open_scan
from seg58.engine.inference import TTA_SYMMETRIES, Predictor, to_tensor
from seg58.engine.tiff_bands import BIGTIFF_ABOVE, TiffBands
from seg58.engine.tiled import predict_native, stream_scores
from seg58.modeling.calibration import normalized_entropy
from seg58.modeling.hierarchy import fine_labels

CPU = torch.device("cpu")
SMOKE = ["experiment=smoke"]


@pytest.fixture(scope="module")
def unet() -> torch.nn.Module:
    import segmentation_models_pytorch as smp

    torch.manual_seed(0)
    return smp.Unet("tu-test_resnet", encoder_weights=None, classes=16).eval()


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)


def test_a_box_of_the_transformed_image_maps_back_onto_the_original():
    x = torch.randn(2, 7, 11)
    for s in TTA_SYMMETRIES[Tta.d4]:
        t = s.apply(x)
        h, w = t.shape[-2:]
        for top, left in itertools.product(range(h - 2), range(w - 3)):
            (a, b, c, d), box = s.undo_box((top, top + 2, left, left + 3), (h, w)), (top, top + 2, left, left + 3)
            assert torch.equal(t[:, box[0]:box[1], box[2]:box[3]], s.apply(x[:, a:b, c:d]))


@pytest.mark.parametrize(("shape", "window", "overlap", "tta"), [
    ((120, 170), 64, 0.25, "none"),  # 3 rows x 4 columns of windows: several bands and columns
    ((150, 230), 96, 0.5, "none"),
    ((120, 170), 64, 0.25, "flips"),  # the flipped passes' windows start on other rows and columns
    ((130, 100), 64, 0.25, "d4"),  # rotated passes: W x H, their window rows are the image's columns
    ((40, 150), 64, 0.25, "d4"),  # shorter than a window: padded below, on the left/right when rotated
])
def test_band_by_band_equals_whole_image_sliding_window(unet, shape, window, overlap, tta):
    image = _image(*shape)
    predictor = Predictor(unet, CPU, 16, mode="slide", window=window, overlap=overlap, amp=False, tta=tta)
    whole = predictor.scores(to_tensor(image))
    bands = [(top, scores.clone()) for top, scores in stream_scores(predictor, image)]
    tops = [top for top, _ in bands]
    assert tops == sorted(tops) and tops[0] == 0 and (len(bands) > 1 or shape[0] < window)
    tiled = torch.cat([scores for _, scores in bands], 1)
    assert [top + s.shape[1] for top, s in bands[:-1]] == tops[1:]  # consecutive, no gap, no overlap
    assert tiled.shape == whole.shape == (16, *shape)
    if tta == "none":  # the same windows summed in the same order: bit for bit
        assert torch.equal(tiled, whole)
    else:  # the passes' probabilities are summed in another order: rounding only
        torch.testing.assert_close(tiled, whole, atol=1e-6, rtol=1e-6)
    assert torch.equal(tiled.argmax(0), whole.argmax(0))


def test_a_tall_scan_goes_in_bands_of_a_window_at_most_whatever_its_height():
    """Bands of one step each, the last window row (pulled back to end at the border) run with the
    one before it: no band of logits (nor carry) outgrows a window and a half, whatever the height."""
    torch.manual_seed(0)
    pointwise = torch.nn.Conv2d(3, 16, 1)
    predictor = Predictor(pointwise, CPU, 16, mode="slide", window=64, overlap=0.25, amp=False)
    for height in (64, 130, 1000, 1001):
        heights = [scores.shape[1] for _, scores in stream_scores(predictor, _image(height, 40))]
        assert sum(heights) == height and max(heights) <= 64 * 1.5, (height, heights)
        assert all(n == 48 for n in heights[:-1])  # the grid's step


def test_native_prediction_writes_full_size_tiled_compressed_tiffs(unet, tmp_path):
    image = _image(300, 530, seed=1)
    predictor = Predictor(unet, CPU, 16, mode="slide", window=128, overlap=0.25, amp=False)
    paths = predict_native(predictor, image, tmp_path / "out", "scan", uncertainty=True, preview_side=200, tile=128)
    assert [p.name for p in paths] == ["scan_mask.tif", "scan_overlay.png", "scan_uncertainty.tif",
                                       "scan_uncertainty_overlay.png"]
    scores = predictor.scores(to_tensor(image))
    expected = {"scan_mask.tif": fine_labels(scores, 16, dim=0).numpy().astype(np.uint8),
                "scan_uncertainty.tif": np.rint(normalized_entropy(scores.softmax(0)).numpy() * 255).astype(np.uint8)}
    for name, truth in expected.items():
        with tifffile.TiffFile(tmp_path / "out" / name) as tif:
            page = tif.pages[0]
            assert page.shape == (300, 530) and page.dtype == np.uint8
            assert page.is_tiled and (page.tilelength, page.tilewidth) == (128, 128) and len(page.dataoffsets) == 3 * 5
            assert page.compression == tifffile.COMPRESSION.ADOBE_DEFLATE and not tif.is_bigtiff
            written = page.asarray()
        if name == "scan_mask.tif":
            assert np.array_equal(written, truth) and written.max() < 16
        else:
            assert np.array_equal(written, truth)
    assert Image.open(tmp_path / "out" / "scan_overlay.png").size == (200, 113)
    assert Image.open(tmp_path / "out" / "scan_uncertainty_overlay.png").size == (200, 113)


def test_bigtiff_above_four_gigabytes_and_a_failed_write_leaves_no_file(tmp_path):
    assert TiffBands(tmp_path / "a.tif", (70_000, 70_000)).bigtiff  # 4.9 GB of labels
    assert not TiffBands(tmp_path / "a.tif", (15_000, 17_000)).bigtiff  # a 255 MP scan: 255 MB
    assert BIGTIFF_ABOVE < 70_000 * 70_000
    with pytest.raises(ValueError, match="3 rows written"), TiffBands(tmp_path / "b.tif", (4, 20), tile=16) as tiff:
        tiff.write(np.zeros((3, 20), np.uint8))
    assert not (tmp_path / "b.tif").exists()
    with pytest.raises(KeyError), TiffBands(tmp_path / "c.tif", (40, 20), tile=16) as tiff:
        tiff.write(np.zeros((17, 20), np.uint8))
        raise KeyError("interrupted")
    assert not (tmp_path / "c.tif").exists()


def test_scans_are_read_as_uint8_rgb_whatever_the_file_holds(tmp_path):
    rgb = _image(37, 45)
    tifffile.imwrite(tmp_path / "plain.tif", rgb, photometric="rgb")  # uncompressed: read a band at a time
    tifffile.imwrite(tmp_path / "packed.tif", rgb, photometric="rgb", compression="zlib", tile=(16, 16))
    Image.fromarray(rgb).save(tmp_path / "a.png")
    for name in ("plain.tif", "packed.tif", "a.png"):
        pixels = open_scan(tmp_path / name)
        assert pixels.shape == (37, 45, 3) and np.array_equal(np.asarray(pixels[0:37, 0:45]), rgb), name
    assert isinstance(open_scan(tmp_path / "plain.tif").pixels, RowFile)  # read from the file as needed
    grey16 = np.random.default_rng(2).integers(0, 65535, (20, 30), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "grey16.tif", grey16)
    pixels = open_scan(tmp_path / "grey16.tif")
    block = pixels[5:9, 2:30]
    assert pixels.shape == (20, 30, 3) and block.shape == (4, 28, 3) and block.dtype == np.uint8
    assert np.array_equal(block[..., 1], np.rint(grey16[5:9, 2:30] / 257).astype(np.uint8))
    tifffile.imwrite(tmp_path / "rgba.tif", np.dstack([rgb, rgb[..., :1]]), photometric="rgb", extrasamples=[2])
    assert np.array_equal(open_scan(tmp_path / "rgba.tif")[0:37, 0:45], rgb)


def test_native_is_a_choice_of_infer_resolution_for_predict_only():
    assert not [p for p in config_problems(make("infer.resolution=native")) if "resolution" in p]
    assert not [p for p in config_problems(make("infer.resolution=512")) if "resolution" in p]
    (problem,) = [p for p in config_problems(make("infer.resolution=nativ")) if "resolution" in p]
    assert "'nativ'" in problem and "expected one of [native]" in problem
    with pytest.raises(ConfigError, match=r"infer\.resolution=native is for seg58 predict"):
        factory.inference_resolution(make("infer.resolution=native"))


def test_predict_native_end_to_end(cli, tmp_path):
    cfg = make(*SMOKE)
    checkpoint = tmp_path / "random.pt"
    torch.save({"model": factory.model(cfg, pretrained=False).state_dict()}, checkpoint)
    (tmp_path / "scans").mkdir()
    tifffile.imwrite(tmp_path / "scans" / "big.tif", _image(200, 330), photometric="rgb")
    Image.fromarray(_image(90, 70, seed=3)).save(tmp_path / "scans" / "small.jpg")
    args = [*SMOKE, f"infer.checkpoint={checkpoint}", "infer.resolution=native", "infer.window=64",
            f"infer.output={tmp_path / 'out'}"]
    res = cli("predict", *args, f"infer.input={tmp_path / 'scans'}", "infer.uncertainty=true", "infer.tta=flips")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "full-size masks (tiled TIFF), overlay previews and uncertainty maps of 2 image(s)" in res.stdout
    for stem, shape in [("big", (200, 330)), ("small", (90, 70))]:
        mask = tifffile.imread(tmp_path / "out" / f"{stem}_mask.tif")
        assert mask.shape == shape and mask.max() < 16
        assert tifffile.imread(tmp_path / "out" / f"{stem}_uncertainty.tif").shape == shape
        assert Image.open(tmp_path / "out" / f"{stem}_overlay.png").size == shape[::-1]  # under 2048: full size
    res = cli("predict", *args, f"infer.input={tmp_path / 'scans' / 'gone.tif'}")
    assert res.returncode == 2 and f"no such image: {tmp_path / 'scans' / 'gone.tif'}" in res.stderr
    assert "Traceback" not in res.stderr
