"""Data lookup and download, against an HTTP server on 127.0.0.1 serving ../shared/datasets."""

import functools
import http.server
import shutil
import threading

import pytest
from conftest import SHARED

from lenet_spec.data import DataError, cache_dir, dataset_dirs, locate

MNIST = SHARED / "datasets" / "mnist"


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No data anywhere: empty HOME, cache and working directory, no LENET_DATA."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("LENET_DATA", raising=False)
    monkeypatch.delenv("LENET_DATA_MIRROR", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def server(tmp_path):
    """Serve a copy of the shared data sets on 127.0.0.1; yields (base URL, served folder)."""
    if not MNIST.exists():
        pytest.skip("../shared/datasets/mnist is not here")
    root = tmp_path / "served"
    shutil.copytree(MNIST, root / "mnist")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", root
    httpd.shutdown()
    httpd.server_close()


def test_lookup_order_without_data_dir(isolated, monkeypatch):
    monkeypatch.setenv("LENET_DATA", "/somewhere")
    dirs = [str(d) for d in dataset_dirs("fashion-mnist")]
    assert dirs[0] == "/somewhere/fashion-mnist"
    assert dirs[1] == str(cache_dir("fashion-mnist"))
    assert "data/fashion-mnist" in dirs and "data/FashionMNIST/raw" in dirs
    assert dirs[-1] == "/usr/share/datasets/fashion-mnist"  # Debian's dataset-fashion-mnist


def test_download_with_paddles_downloader(isolated, server, monkeypatch):
    pytest.importorskip("paddle")
    from lenet_paddle.data import downloader

    url, _ = server
    monkeypatch.setenv("LENET_DATA_MIRROR", url)
    folder = locate("mnist", downloader=downloader())
    assert folder == cache_dir("mnist") and folder.is_relative_to(isolated)
    assert sorted(p.name for p in folder.glob("*.gz")) == sorted(p.name for p in MNIST.glob("*.gz"))
    assert locate("mnist") == folder  # found in the cache next time, no downloader needed


def test_download_into_data_dir(isolated, server, monkeypatch):
    pytest.importorskip("paddle")
    from lenet_paddle.data import downloader

    monkeypatch.setenv("LENET_DATA_MIRROR", server[0])
    assert locate("mnist", isolated / "mine", downloader()) == isolated / "mine"


def test_corrupt_download_is_refused(isolated, server, monkeypatch):
    pytest.importorskip("paddle")
    from lenet_paddle.data import downloader

    url, root = server
    broken = root / "mnist" / "t10k-labels-idx1-ubyte.gz"
    import gzip

    broken.write_bytes(gzip.compress(gzip.decompress(broken.read_bytes())[:-1] + b"\x07"))
    monkeypatch.setenv("LENET_DATA_MIRROR", url)
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz: checksum mismatch"):
        locate("mnist", downloader=downloader())
    assert not (cache_dir("mnist") / "t10k-labels-idx1-ubyte.gz").exists()


def test_no_downloader_says_where_it_looked(isolated):
    with pytest.raises(DataError) as info:
        locate("mnist")
    message = str(info.value)
    assert "\n" not in message and "looked in" in message and "no downloader is importable" in message and "--data-dir" in message


def test_unreachable_mirror(isolated, monkeypatch):
    pytest.importorskip("paddle")
    from lenet_paddle.data import downloader

    monkeypatch.setenv("LENET_DATA_MIRROR", "http://127.0.0.1:9/")  # discard port: refused at once
    with pytest.raises(DataError, match="download failed"):
        locate("mnist", downloader=downloader())


def test_torch_downloader_is_optional():
    pytest.importorskip("torch")
    from lenet_torch.data import downloader

    fetch = downloader()
    try:
        import torchvision  # noqa: F401
    except Exception:
        assert fetch is None  # e.g. a CUDA torchvision beside a CPU torch
    else:
        assert callable(fetch)
