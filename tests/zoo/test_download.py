"""Downloads of published checkpoints, against a local HTTP server only.

The server (127.0.0.1, a thread) serves fixed bytes and can break off a
transfer half-way, ignore Range requests, answer with an HTML page or send
other bytes, so every recovery path of `kerapose.zoo.download` runs
without the internet.
"""

import copy
import hashlib
import json
import os
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer

import keras
import numpy as np
import pytest

from kerapose import zoo
from kerapose.convert import CONVERTER_VERSIONS
from kerapose.convert import CheckpointMismatchError
from kerapose.testing.test_case import to_numpy
from kerapose.zoo import registry
from kerapose.zoo.download import ChecksumError
from kerapose.zoo.download import DownloadError
from kerapose.zoo.download import OfflineError
from kerapose.zoo.download import download
from tests.conftest import shared_path

PAYLOAD = np.random.default_rng(0).bytes(300_000)
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()
HTML = b"<!DOCTYPE html><html><body>404 Not Found</body></html>"


class Handler(BaseHTTPRequestHandler):
    """Serves `/<mode>/<name>`. Modes: `full`; `drop` (the first request
    gets half the body, then the connection closes), `dropall` (every
    request does); `norange` and `drop-norange` (Range is ignored: 200 and
    the whole body); `html` (an HTML page with Content-Type text/html),
    `htmlbody` (an HTML body with a binary Content-Type); `wrong` (other
    bytes); `missing` (404). Range requests get 206 otherwise."""

    def log_message(self, *args):  # keep pytest's output clean
        pass

    def do_GET(self):
        server = self.server
        mode, _, name = self.path.strip("/").partition("/")
        server.requests.append((mode, self.headers.get("Range")))
        body = server.files.get(name, PAYLOAD)
        if mode == "html":
            return self._send(200, HTML, "text/html; charset=utf-8")
        if mode == "htmlbody":
            return self._send(200, b"\n  " + HTML, "application/octet-stream")
        if mode == "missing":
            return self.send_error(404)
        if mode == "wrong":
            body = bytes(len(body))
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if match and "norange" not in mode:
            start = int(match.group(1))
        status = 206 if start else 200
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body) - start))
        if start:
            self.send_header(
                "Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}"
            )
        self.end_headers()
        first_try = sum(m == mode for m, _ in server.requests) == 1
        if mode == "dropall" or (mode.startswith("drop") and first_try):
            # Half of what is asked, then the connection closes.
            self.wfile.write(body[start : (start + len(body)) // 2])
            self.close_connection = True
            return
        self.wfile.write(body[start:])

    def _send(self, status, body, kind):
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.requests = []
    httpd.files = {}
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(
        target=httpd.serve_forever, args=(0.05,), daemon=True
    )
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAPOSE_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def closed_port_url(name):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/full/{name}"


def cache_files(home):
    return sorted(p.name for p in home.rglob("*") if p.is_file())


def test_full_download_with_progress_and_reuse(server, home, capsys):
    path = download(f"{server.url}/full/a.pth", DIGEST, "checkpoints")
    assert path == home / "checkpoints" / "a.pth"
    assert path.read_bytes() == PAYLOAD
    assert "0.3/0.3 MB (100%)" in capsys.readouterr().err
    # Reused when its hash matches: no second request.
    assert download(f"{server.url}/full/a.pth", DIGEST, "checkpoints") == path
    assert server.requests == [("full", None)]
    assert cache_files(home) == ["a.pth"]


def test_sha256_prefix_is_checked(server, home):
    path = download(f"{server.url}/full/a.pth", sha256_prefix=DIGEST[:8])
    assert path.read_bytes() == PAYLOAD
    with pytest.raises(ChecksumError, match=f"expected 0000abcd.*{DIGEST}"):
        download(f"{server.url}/full/b.pth", sha256_prefix="0000abcd")
    assert cache_files(home) == ["a.pth"]


def test_broken_transfer_resumes_with_range(server, home, capsys):
    path = download(f"{server.url}/drop/a.pth", DIGEST)
    assert path.read_bytes() == PAYLOAD
    half = len(PAYLOAD) // 2
    assert server.requests == [("drop", None), ("drop", f"bytes={half}-")]
    assert "resuming" in capsys.readouterr().err
    assert cache_files(home) == ["a.pth"]


def test_broken_transfer_restarts_when_range_is_ignored(server, home):
    path = download(f"{server.url}/drop-norange/a.pth", DIGEST)
    assert path.read_bytes() == PAYLOAD
    half = len(PAYLOAD) // 2
    assert [r for _, r in server.requests] == [None, f"bytes={half}-"]
    assert cache_files(home) == ["a.pth"]


def test_leftover_part_is_restarted_when_range_is_ignored(server, home):
    part = home / "weights" / "a.pth.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"junk from an older file")
    path = download(f"{server.url}/norange/a.pth", DIGEST)
    assert path.read_bytes() == PAYLOAD
    assert server.requests == [("norange", "bytes=23-")]
    assert cache_files(home) == ["a.pth"]


def test_leftover_part_is_resumed(server, home):
    half = len(PAYLOAD) // 3
    part = home / "weights" / "a.pth.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(PAYLOAD[:half])
    path = download(f"{server.url}/full/a.pth", DIGEST)
    assert path.read_bytes() == PAYLOAD
    assert server.requests == [("full", f"bytes={half}-")]
    assert cache_files(home) == ["a.pth"]


def test_stale_part_of_another_file_is_redone(server, home):
    part = home / "weights" / "a.pth.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"x" * 1000)  # resumes "fine", then the hash fails
    path = download(f"{server.url}/full/a.pth", DIGEST)
    assert path.read_bytes() == PAYLOAD
    assert server.requests == [("full", "bytes=1000-"), ("full", None)]


def test_transfer_that_keeps_breaking_leaves_nothing(server, home):
    with pytest.raises(DownloadError, match="broke off 2 times"):
        download(f"{server.url}/dropall/a.pth", DIGEST)
    assert len(server.requests) == 2
    assert cache_files(home) == []


@pytest.mark.parametrize(
    "mode, why", [("html", "Content-Type text/html"), ("htmlbody", "HTML")]
)
def test_html_page_is_refused(server, home, mode, why):
    with pytest.raises(DownloadError, match=f"web page.*{why}"):
        download(f"{server.url}/{mode}/a.pth", DIGEST)
    assert cache_files(home) == []


def test_wrong_bytes_are_refused(server, home):
    with pytest.raises(ChecksumError, match=f"expected {DIGEST}, got"):
        download(f"{server.url}/wrong/a.pth", DIGEST)
    with pytest.raises(ValueError, match="sha256 mismatch"):  # a ValueError
        download(f"{server.url}/wrong/a.pth", DIGEST)
    assert cache_files(home) == []


def test_http_error_says_the_status(server, home):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(f"{server.url}/missing/a.pth", DIGEST)
    assert cache_files(home) == []


def test_offline_names_the_url(home):
    url = closed_port_url("a.pth")
    with pytest.raises(OfflineError, match="Could not reach") as info:
        download(url, DIGEST, timeout=5)
    assert url in str(info.value)
    assert isinstance(info.value, ConnectionError)
    assert cache_files(home) == []


def test_unwritable_home_is_reported_before_downloading(
    server, tmp_path, monkeypatch
):
    blocker = tmp_path / "a_file"
    blocker.write_text("")  # a file where the home folder should be
    monkeypatch.setenv("KERAPOSE_HOME", str(blocker))
    with pytest.raises(PermissionError, match="KERAPOSE_HOME=") as info:
        download(f"{server.url}/full/a.pth", DIGEST)
    assert str(blocker / "weights") in str(info.value)
    assert server.requests == []


@pytest.mark.skipif(
    os.name != "posix" or os.geteuid() == 0,
    reason="chmod does not stop root (or non-POSIX) from writing",
)
def test_read_only_home_is_reported_before_downloading(server, home):
    home.mkdir()
    home.chmod(0o500)
    try:
        with pytest.raises(PermissionError, match="KERAPOSE_HOME=") as info:
            download(f"{server.url}/full/a.pth", DIGEST)
    finally:
        home.chmod(0o700)
    assert str(home / "weights") in str(info.value)
    assert server.requests == []


def test_hrnet_tags_name_mmpose_checkpoints():
    for arch in ("hrnet_w32", "hrnet_w48"):
        for tag, info in zoo.describe(arch)["tags"].items():
            weights = info["weights"]
            name = weights["url"].rsplit("/", 1)[-1]
            assert re.fullmatch(r"[0-9a-f]{8}", weights["sha256_prefix"])
            assert f"-{weights['sha256_prefix']}_" in name
            assert tag.split("_")[1] in name and arch[-3:] in name
            assert weights["layout"] == "mmpose-1.x"
            assert weights["licence"] == "Apache-2.0"
            assert 0.7 < weights["metrics"]["coco/AP"] < 0.8
            assert weights["official_checkpoint"].endswith(".pth")


def test_pretrained_lists_exactly_the_tags_with_a_source(home):
    pretrained = set(zoo.list_models(pretrained=True))
    assert "hrnet_w32.coco_384x288" in pretrained
    without_source = set()
    for arch, preset in registry.read_builtin_presets().items():
        for tag, info in preset.get("tags", {}).items():
            weights = info.get("weights") or {}
            if weights.get("url"):
                assert f"{arch}.{tag}" in pretrained
            else:
                assert f"{arch}.{tag}" not in pretrained
                without_source.add((f"{arch}.{tag}", weights.get("file")))
    assert without_source, "every tag has a URL: test a local file instead"
    name, file = sorted(without_source)[0]
    (home / "weights").mkdir(parents=True)
    (home / "weights" / file).write_bytes(b"")
    assert name in zoo.list_models(pretrained=True)


# --- zoo.load(weights="default") end to end ------------------------------


def tiny_mmpose_preset(url, sha256_prefix):
    """`test_hrnet` shaped like the `mmpose_hrnet_tiny` fixture (stage 1:
    one Bottleneck; 96x64 input), with weights at `url`."""
    preset = copy.deepcopy(registry.resolve("test_hrnet")[2])
    inner = preset["config"]["config"]
    inner["backbone"]["config"].update(
        stage1_blocks=1, stage1_filters=64, image_shape=[96, 64, 3]
    )
    inner["codec"]["config"].update(input_size=[96, 64], heatmap_size=[24, 16])
    preset["tags"] = {
        "tiny": {
            "image_shape": [96, 64, 3],
            "metrics": {},
            "weights": {
                "file": "test_mmpose_hrnet_tiny.weights.h5",
                "url": url,
                "sha256_prefix": sha256_prefix,
                "layout": "mmpose-1.x",
                "source": "the mmpose_hrnet_tiny test fixture",
                "licence": "Apache-2.0",
                "metrics": {},
            },
        }
    }
    return preset


@pytest.fixture
def tiny_fixture(server, monkeypatch):
    """Registers `test_mmpose_hrnet` whose weights the server serves."""
    path = shared_path("reference", "mmpose_hrnet_tiny", "model.pth")
    data = path.read_bytes()
    name = "td-hm_hrnet-tiny-" + hashlib.sha256(data).hexdigest()[:8] + ".pth"
    server.files[name] = data
    url = f"{server.url}/drop/{name}"
    preset = tiny_mmpose_preset(url, hashlib.sha256(data).hexdigest()[:8])
    monkeypatch.setitem(registry.PRESETS, "test_mmpose_hrnet", preset)
    return name, preset


def fixture_output_error(model, fixture="mmpose_hrnet_tiny"):
    def nhwc(file):
        path = shared_path("reference", fixture, file)
        return np.load(path).transpose(0, 2, 3, 1)

    y = model(keras.ops.convert_to_tensor(nhwc("input.npy")), training=False)
    return float(
        np.abs(keras.ops.convert_to_numpy(y) - nhwc("output.npy")).max()
    )


def test_default_weights_download_convert_and_cache(
    server, home, tiny_fixture, capsys
):
    name, _ = tiny_fixture
    model = zoo.load("test_mmpose_hrnet", weights="default", compile=False)
    assert fixture_output_error(model) < 1e-4  # the fixture's tolerance
    converted = home / "weights" / "test_mmpose_hrnet_tiny.weights.h5"
    stamp = home / "weights" / "test_mmpose_hrnet_tiny.converter.json"
    assert cache_files(home) == [name, stamp.name, converted.name]
    assert json.loads(stamp.read_text()) == {"converter": "hrnet-v1"}
    err = capsys.readouterr().err
    assert "resuming" in err  # the server broke the first transfer off
    assert str(converted) in err
    requests = len(server.requests)
    assert requests == 2
    (home / "checkpoints" / name).unlink()  # the converted file suffices
    again = zoo.load("test_mmpose_hrnet.tiny", weights="tiny", compile=False)
    assert len(server.requests) == requests
    for a, b in zip(model.weights, again.weights):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))


def test_default_weights_offline_says_what_to_place_where(
    home, tiny_fixture, monkeypatch
):
    name, preset = tiny_fixture
    spec = preset["tags"]["tiny"]["weights"]
    spec["url"] = closed_port_url(name)
    with pytest.raises(OfflineError) as info:
        zoo.load("test_mmpose_hrnet", weights="default")
    message = str(info.value)
    assert spec["url"] in message
    assert str(home / "checkpoints" / name) in message
    assert str(home / "weights" / spec["file"]) in message
    assert f"kerapose convert test_mmpose_hrnet.tiny {name} -o" in message
    assert cache_files(home) == []


def test_conversion_failure_leaves_no_weights_file(server, home, tiny_fixture):
    name, preset = tiny_fixture
    # The fixture's checkpoint under a model of other widths.
    preset["config"]["config"]["backbone"]["config"]["stage_channels"] = [
        8,
        16,
        32,
        48,
    ]
    with pytest.raises(CheckpointMismatchError, match="Shape mismatches"):
        zoo.load("test_mmpose_hrnet", weights="default")
    assert cache_files(home) == [name]  # the verified checkpoint stays


# --- converter versions: what an older converter wrote is not loaded ----


def write_other_weights(name, path, **kwargs):
    """Random-init weights of `name` at `path`: what an older converter
    might have written."""
    other = zoo.load(name, compile=False, **kwargs)
    zoo.save_weights(other, path)
    return other


def test_default_weights_converted_again_when_the_converter_changes(
    server, home, tiny_fixture, monkeypatch
):
    name, _ = tiny_fixture
    zoo.load("test_mmpose_hrnet", weights="default", compile=False)
    requests = len(server.requests)
    converted = home / "weights" / "test_mmpose_hrnet_tiny.weights.h5"
    stamp = home / "weights" / "test_mmpose_hrnet_tiny.converter.json"
    # Other weights under the stamp of the current converter are used ...
    stale = write_other_weights("test_mmpose_hrnet", converted)
    stamp.write_text(stamp.read_text())  # written after the weights
    model = zoo.load("test_mmpose_hrnet", weights="default", compile=False)
    for a, b in zip(model.weights, stale.weights):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))
    # ... and converted again from the downloaded checkpoint once the
    # family's converter version is bumped.
    monkeypatch.setitem(CONVERTER_VERSIONS, "hrnet", 2)
    model = zoo.load("test_mmpose_hrnet", weights="default", compile=False)
    assert fixture_output_error(model) < 1e-4
    assert len(server.requests) == requests  # no new download
    assert json.loads(stamp.read_text()) == {"converter": "hrnet-v2"}
    assert cache_files(home) == [name, stamp.name, converted.name]
    # Without the checkpoint, a bump downloads it again.
    (home / "checkpoints" / name).unlink()
    monkeypatch.setitem(CONVERTER_VERSIONS, "hrnet", 3)
    zoo.load("test_mmpose_hrnet", weights="default", compile=False)
    assert len(server.requests) > requests
    assert json.loads(stamp.read_text()) == {"converter": "hrnet-v3"}


def test_default_weights_without_a_stamp(server, home, tiny_fixture):
    name, _ = tiny_fixture
    zoo.load("test_mmpose_hrnet", weights="default", compile=False)
    requests = len(server.requests)
    converted = home / "weights" / "test_mmpose_hrnet_tiny.weights.h5"
    stamp = home / "weights" / "test_mmpose_hrnet_tiny.converter.json"
    # A kerapose from before converter versions wrote no stamp: converted
    # again from the checkpoint still here.
    write_other_weights("test_mmpose_hrnet", converted)
    stamp.unlink()
    model = zoo.load("test_mmpose_hrnet", weights="default", compile=False)
    assert fixture_output_error(model) < 1e-4
    assert len(server.requests) == requests
    assert json.loads(stamp.read_text()) == {"converter": "hrnet-v1"}
    # A file converted by hand and placed over it (from the official
    # checkpoint, or offline) is newer than the stamp: kept, even with the
    # checkpoint here and an older converter named in the stamp.
    stamp.write_text(json.dumps({"converter": "hrnet-v0"}))
    mine = write_other_weights("test_mmpose_hrnet", converted)
    later = stamp.stat().st_mtime_ns + 10**9
    os.utime(converted, ns=(later, later))
    model = zoo.load("test_mmpose_hrnet", weights="default", compile=False)
    for a, b in zip(model.weights, mine.weights):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))
    assert len(server.requests) == requests


def test_checkpoint_cache_is_keyed_by_converter_version(home, monkeypatch):
    checkpoint = shared_path("reference", "hrnet_tiny", "model.pth")
    digest = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    folder = home / "converted"
    folder.mkdir(parents=True)

    def load(**kwargs):
        return zoo.load(
            "test_hrnet",
            input_shape=(96, 64, 3),
            compile=False,
            **kwargs,
        )

    def cached(version):
        return folder / f"{digest}.hrnet-v{version}.weights.h5"

    # A file cached before converter versions (no version in its name).
    write_other_weights(
        "test_hrnet", folder / f"{digest}.weights.h5", input_shape=(96, 64, 3)
    )
    model = load(weights=str(checkpoint))
    assert fixture_output_error(model, "hrnet_tiny") < 1e-4
    assert cache_files(home) == [cached(1).name]  # the stale one is gone
    # The current version's file is what loads ...
    stale = write_other_weights(
        "test_hrnet", cached(1), input_shape=(96, 64, 3)
    )
    model = load(weights=str(checkpoint))
    for a, b in zip(model.weights, stale.weights):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))
    # ... until the family's version is bumped: converted again.
    monkeypatch.setitem(CONVERTER_VERSIONS, "hrnet", 2)
    model = load(weights=str(checkpoint))
    assert fixture_output_error(model, "hrnet_tiny") < 1e-4
    assert cache_files(home) == [cached(2).name]
