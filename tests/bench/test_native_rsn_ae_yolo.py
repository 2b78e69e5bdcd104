"""The native PyTorch RSN, AE hourglass and YOLO-Pose of the benchmark
reproduce the official reference fixtures and the official sizes."""

import json

import numpy as np
import pytest

from tests.conftest import shared_path

torch = pytest.importorskip("torch")

from bench.native import hourglass  # noqa: E402
from bench.native import rsn  # noqa: E402
from bench.native import yolo_pose  # noqa: E402

# Raw YOLO levels and decoded rows: the README's tolerances (the float32
# noise of the deep graph is above 1e-4; a BN-eps slip moves them by > 5).
YOLO_RAW_ATOL = 1e-3
YOLO_ROWS_ATOL = 0.2


def _fixture(name):
    path = shared_path("reference", name)
    config = json.loads((path / "config.json").read_text())
    return path, config


def _loaded(module, name):
    """The fixture's model with its official weights, in eval mode."""
    path, config = _fixture(module.FIXTURES[name])
    model = module.fixture_model(module.FIXTURES[name])
    state_dict = torch.load(path / "model.pth", weights_only=True)
    keys = [line.split()[0] for line in open(path / "keys.txt")]
    assert list(model.state_dict()) == keys
    model.load_state_dict(state_dict, strict=True)
    model.eval()
    images = torch.from_numpy(np.load(path / "input.npy"))
    return model, images, path, config


def _max_diff(actual, path, file):
    return float(np.abs(actual.numpy() - np.load(path / file)).max())


def test_rsn_matches_official_fixture():
    model, images, path, config = _loaded(rsn, "rsn_18")
    with torch.no_grad():
        heatmaps = model(images)
    assert tuple(heatmaps.shape) == (2, 17, 24, 16)
    atol = config["recommended_atol"]["output"]
    assert _max_diff(heatmaps, path, "output.npy") < atol


def test_hourglass_matches_official_fixture():
    model, images, path, config = _loaded(hourglass, "hourglass_ae")
    with torch.no_grad():
        # The official forward takes NHWC.
        preds = model(images.permute(0, 2, 3, 1))
    assert tuple(preds.shape) == (2, 2, 68, 32, 16)
    atol = config["recommended_atol"]["output"]
    assert _max_diff(preds, path, "output.npy") < atol


def test_yolo_pose_matches_official_fixture():
    model, images, path, config = _loaded(yolo_pose, "yolo_pose_s6")
    with torch.no_grad():
        raw = model(images, raw=True)
        rows, levels = model(images)
    for i, level in enumerate(raw):
        assert _max_diff(level, path, f"raw_level_{i}.npy") < YOLO_RAW_ATOL
    assert tuple(rows.shape) == (2, 510, 57)
    assert _max_diff(rows, path, "output_0.npy") < YOLO_ROWS_ATOL
    for i, level in enumerate(levels, 1):
        atol = config["recommended_atol"][f"output_{i}"]
        assert _max_diff(level, path, f"output_{i}.npy") < atol


@pytest.mark.parametrize(
    "module, name, params",
    [
        (rsn, "rsn_18", 9_159_072),
        (hourglass, "hourglass_ae", 138_893_840),
        (yolo_pose, "yolo_pose_s6", 15_114_860),
    ],
)
def test_full_size_parameter_counts(module, name, params):
    # Built on the meta device: shapes only, no memory or init time.
    with torch.device("meta"):
        model = module.full_model(name)
    assert sum(p.numel() for p in model.parameters()) == params
