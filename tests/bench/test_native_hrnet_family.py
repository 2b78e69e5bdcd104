"""The native PyTorch HRNet, OmniPose(-Lite) and HigherHRNet baselines.

`bench/native/{hrnet,omnipose,higherhrnet}.py` must carry the official
state-dict layout (keys, order, shapes) and reproduce the official outputs
of the reference fixtures (`shared/reference/README.md` sections 4.1, 4.2
and 4.6), so that the speed benchmark times the same networks on both
sides. PyTorch only: the result is the same under every KERAS_BACKEND.
Full-size models are built on the meta device (no memory, no init).
"""

import importlib
import json

import numpy as np
import pytest

from tests.conftest import shared_path

torch = pytest.importorskip("torch")
hrnet = importlib.import_module("bench.native.hrnet")
omnipose = importlib.import_module("bench.native.omnipose")
higherhrnet = importlib.import_module("bench.native.higherhrnet")

MODULES = (hrnet, omnipose, higherhrnet)
CASES = [(m, name) for m in MODULES for name in m.FIXTURES]
IDS = [name for _, name in CASES]
# README section 6 (OmniPose: all / trainable, the gap being the frozen
# Gaussian filters) and section 4.6.
FULL_PARAMS = {
    "hrnet_w32": (28_536_113, 28_536_113),
    "hrnet_w48": (63_595_745, 63_595_745),
    "omnipose": (68_141_357, 68_119_757),
    "omnipose_lite": (11_128_984, 11_107_384),
    "higherhrnet_w32": (28_645_331, 28_645_331),
    "higherhrnet_w48": (63_827_139, 63_827_139),
}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # Tiny convs on a shared 2-core machine: spinning worker threads cost
    # seconds under load, one thread well under a second.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def read_keys(path):
    """`keys.txt` -> [(key, shape)], in state-dict order."""
    entries = []
    for line in path.read_text().splitlines():
        key, rest = line.split(" ", 1)
        entries.append((key, json.loads(rest[: rest.index("]") + 1])))
    return entries


def layout(model):
    return [(k, list(v.shape)) for k, v in model.state_dict().items()]


@pytest.mark.parametrize("module, name", CASES, ids=IDS)
def test_fixture_layout_is_official(module, name):
    path = shared_path("reference", module.FIXTURES[name])
    assert layout(module.fixture_model(name)) == read_keys(path / "keys.txt")


@pytest.mark.parametrize("module, name", CASES, ids=IDS)
def test_fixture_outputs_match_official(module, name):
    path = shared_path("reference", module.FIXTURES[name])
    config = json.loads((path / "config.json").read_text())
    got = hrnet.run_fixture(module.fixture_model(name), path)
    files = sorted(config["recommended_atol"])
    assert len(got) == len(files)
    for output, file in zip(got, files):
        ref = np.load(path / f"{file}.npy")
        assert output.shape == ref.shape
        diff = float(np.abs(output - ref).max())
        print(f"{name} {file}: max |diff| = {diff:.2e}")
        assert diff < config["recommended_atol"][file]


@pytest.mark.parametrize("name", sorted(FULL_PARAMS))
def test_full_size_parameter_counts(name):
    module = next(m for m in MODULES if name in m.FULL_CONFIGS)
    with torch.device("meta"):
        model = module.full_model(name)
    params = list(model.parameters())
    total = sum(p.numel() for p in params)
    trainable = sum(p.numel() for p in params if p.requires_grad)
    assert (total, trainable) == FULL_PARAMS[name]


def test_full_size_hrnet_w32_layout_is_official():
    path = shared_path("reference", "hrnet_w32_full_shape", "keys.txt")
    with torch.device("meta"):
        model = hrnet.full_model("hrnet_w32")
    assert layout(model) == read_keys(path)


def test_unknown_name_is_refused():
    with pytest.raises(ValueError, match="omnipose_lite"):
        omnipose.full_model("omnipose-lite")
