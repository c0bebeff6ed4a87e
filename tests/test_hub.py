"""Official weights by name: the real download code against a loopback HTTP server.

The server (``http.server`` in a thread on 127.0.0.1) plays the mirror named by
``CONVERSE_JAX_WEIGHTS_URL``; it serves the official files from ``../shared/data/weights``
(or, for the failure cases, a wrong file, nothing, or a body cut short).
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import socket
import threading
from pathlib import Path

import numpy as np
import pytest

from conftest import shared_path
from converse_jax.models import MODELS, list_models
from converse_jax.pretrained import load
from converse_jax.pretrained.hub import WeightsDownloadError, fetch
from converse_jax.utils.atomic import default_file_mode

RELEASED = ["converse_dncnn", "converse_srresnet", "converse_usrnet", "conversenet"]  # the official files in ../shared

NAME = "conversenet"  # the smallest official checkpoint (1 MB)


class _Handler(http.server.SimpleHTTPRequestHandler):
    requests: list[str]

    def log_message(self, *args):  # keep the test output clean
        pass

    def do_GET(self):
        self.requests.append(self.path)
        super().do_GET()


class _CutShort(_Handler):
    """Announces the whole file, sends half of it and closes the connection."""

    def do_GET(self):
        self.requests.append(self.path)
        body = (Path(self.directory) / self.path.lstrip("/")).read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self.wfile.flush()
        self.close_connection = True


@pytest.fixture
def serve(monkeypatch, tmp_path):
    """``serve(folder, handler)`` starts a mirror of ``folder``; returns the list of requested paths."""
    servers = []
    monkeypatch.setenv("CONVERSE_JAX_CACHE", str(tmp_path / "cache"))

    def start(folder: Path, handler: type[_Handler] = _Handler) -> list[str]:
        requests: list[str] = []
        cls = type("H", (handler,), {"requests": requests})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(cls, directory=str(folder)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        monkeypatch.setenv("CONVERSE_JAX_WEIGHTS_URL", f"http://127.0.0.1:{server.server_port}/")
        return requests

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _cache_files(tmp_path: Path) -> list[str]:
    cache = tmp_path / "cache"
    return sorted(p.name for p in cache.iterdir()) if cache.exists() else []


def test_download_verifies_caches_and_loads(serve, tmp_path):
    requests = serve(shared_path("data/weights"))
    model, variables = load(NAME, progress=False)
    assert type(model).__name__ == "ConverseNet"
    cached = tmp_path / "cache" / f"{NAME}.pth"
    assert _cache_files(tmp_path) == [f"{NAME}.pth"]
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == MODELS[NAME].pretrained.sha256
    assert cached.stat().st_mode & 0o777 == default_file_mode()  # the user's umask, not pooch's 0600
    _, again = load(NAME, progress=False)  # from the cache: no second request
    assert requests == [f"/{NAME}.pth"]
    np.testing.assert_array_equal(again["params"]["head"]["kernel"], variables["params"]["head"]["kernel"])
    with pytest.raises(ValueError, match="hold a 'conversenet' network, but the model is 'converse_usrnet'"):
        load(NAME, arch="converse_usrnet")


def test_wrong_file_is_refused_and_not_cached(serve, tmp_path):
    wrong = tmp_path / "mirror"
    wrong.mkdir()
    (wrong / f"{NAME}.pth").symlink_to(shared_path("data/weights/converse_usrnet.pth"))
    serve(wrong)
    with pytest.raises(WeightsDownloadError, match=f"{NAME}.pth has SHA-256 [0-9a-f]{{64}}, not the official {MODELS[NAME].pretrained.sha256}"):
        fetch(NAME, progress=False)
    assert _cache_files(tmp_path) == []


def test_server_down_names_the_url(monkeypatch, tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("CONVERSE_JAX_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CONVERSE_JAX_WEIGHTS_URL", f"http://127.0.0.1:{port}")
    with pytest.raises(WeightsDownloadError, match=rf"could not download http://127\.0\.0\.1:{port}/{NAME}\.pth"):
        fetch(NAME, progress=False, timeout=5)
    assert _cache_files(tmp_path) == []


def test_interrupted_download_leaves_no_file(serve, tmp_path):
    serve(shared_path("data/weights"), _CutShort)
    with pytest.raises(WeightsDownloadError, match=f"{NAME}.pth"):
        fetch(NAME, progress=False, timeout=5)
    assert _cache_files(tmp_path) == []


def test_missing_file_on_the_mirror(serve, tmp_path):
    (tmp_path / "empty").mkdir()
    serve(tmp_path / "empty")
    with pytest.raises(WeightsDownloadError, match="HTTP 404"):
        fetch(NAME, progress=False)
    assert _cache_files(tmp_path) == []


def test_the_records_hashes_are_those_of_the_released_files():
    assert set(RELEASED) <= set(list_models(pretrained=True))
    for name in RELEASED:
        cfg = MODELS[name].pretrained
        assert hashlib.sha256(shared_path(f"data/weights/{cfg.file}").read_bytes()).hexdigest() == cfg.sha256, name


@pytest.mark.slow
def test_showcase_without_weights_downloads_the_four_by_name(serve, tmp_path, capsys):
    from converse_jax.cli.main import main

    requests = serve(shared_path("data/weights"))
    assert main(["showcase", "--out", str(tmp_path / "figure.png"), "--size", "32", "--quiet"]) == 0
    assert sorted(requests) == sorted(f"/{name}.pth" for name in RELEASED)
    assert _cache_files(tmp_path) == sorted(f"{name}.pth" for name in RELEASED)
    assert (tmp_path / "figure.png").is_file()
