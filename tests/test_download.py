"""Data lookup and download, against an HTTP server on 127.0.0.1 serving ../shared/datasets."""

import functools
import http.server
import shutil
import threading

import numpy as np
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
    assert "\n" not in message and "looked in" in message and "no download was tried" in message and "--data-dir" in message


def test_unreachable_mirror(isolated, monkeypatch):
    pytest.importorskip("paddle")
    from lenet_paddle.data import downloader

    monkeypatch.setenv("LENET_DATA_MIRROR", "http://127.0.0.1:9/")  # discard port: refused at once
    with pytest.raises(DataError) as info:
        locate("mnist", downloader=downloader())
    lines = str(info.value).splitlines()
    assert lines[0] == "mnist not found, and its download failed; nothing was written:" and "  downloader: paddle's get_path_from_url" in lines
    assert "  http://127.0.0.1:9/mnist/: Download from train-images-idx3-ubyte.gz failed. Retry limit reached" in lines  # the file's name for its URL
    assert not cache_dir("mnist").exists()


def test_torch_downloader_is_optional():
    pytest.importorskip("torch")
    from lenet_torch.data import downloader

    fetch = downloader()
    try:
        import torchvision  # noqa: F401
    except Exception:
        assert fetch.label.startswith("urllib")  # e.g. a CUDA torchvision beside a CPU torch: the standard library's
    else:
        assert fetch.label == "torchvision's download_url"


def test_torch_trainer_downloads_without_torchvision(isolated, server, monkeypatch):
    """torchvision cannot be imported beside a CPU torch: the torch trainer downloads with the
    standard library then, and says so when that fails."""
    pytest.importorskip("torch")
    from lenet_torch.data import downloader

    fetch = downloader()
    try:
        import torchvision  # noqa: F401
    except Exception:
        assert "urllib" in fetch.label and "torchvision is not importable" in fetch.label
    monkeypatch.setenv("LENET_DATA_MIRROR", server[0])
    folder = locate("mnist", downloader=fetch)
    assert folder == cache_dir("mnist") and len(list(folder.glob("*.gz"))) == 4 and not list(folder.glob(".*.tmp"))
    monkeypatch.setenv("LENET_DATA_MIRROR", "http://127.0.0.1:9/")
    with pytest.raises(DataError) as info:
        locate("fashion-mnist", isolated / "nothing", downloader=fetch)  # a folder of its own: Debian's copy may be installed
    lines = str(info.value).splitlines()
    assert lines[:3] == [
        "fashion-mnist not found, and its download failed; nothing was written:",
        f"  looked in {isolated / 'nothing'}: no such folder",
        f"  downloader: {fetch.label}",
    ]
    assert lines[3].startswith("  http://127.0.0.1:9/fashion-mnist/: <urlopen error") and "--data-dir" in lines[4] and len(lines) == 5
    assert not (isolated / "nothing").exists()


def test_a_failed_download_writes_nothing(isolated, server, monkeypatch):
    """A mirror that lacks a file: the three it had are not left behind, the folder named is not
    created (nor the cache), and no temporary folder stays beside them."""
    from lenet_spec.data import http_downloader

    url, root = server
    (root / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    monkeypatch.setenv("LENET_DATA_MIRROR", url)
    before = sorted(isolated.iterdir())
    for data_dir in (isolated / "mistyped", None):
        with pytest.raises(DataError) as info:
            locate("mnist", data_dir, http_downloader())
        assert f"  {url}mnist/: HTTP Error 404: File not found" in str(info.value).splitlines()
        assert sorted(isolated.iterdir()) == before and not cache_dir("mnist").exists()
    (isolated / "mine").mkdir()  # a folder that exists: it stays empty
    with pytest.raises(DataError):
        locate("mnist", isolated / "mine", http_downloader())
    assert list((isolated / "mine").iterdir()) == []


def test_each_mirror_tried_is_a_line_of_its_own(isolated, server, monkeypatch):
    """The public mirrors in turn: one line each with its error, short; the next one's files complete the first's."""
    from lenet_spec import data as data_module
    from lenet_spec.data import MAX_SHOWN_ERROR, http_downloader

    url, root = server
    monkeypatch.setitem(data_module.MIRRORS, "mnist", ("http://127.0.0.1:9/mnist/", f"{url}mnist/"))
    assert locate("mnist", isolated / "new", http_downloader()) == isolated / "new"  # created once the download succeeded
    assert sorted(p.name for p in (isolated / "new").iterdir()) == sorted(p.name for p in MNIST.glob("*.gz"))
    monkeypatch.setitem(data_module.MIRRORS, "mnist", ("http://127.0.0.1:9/mnist/", f"{url}gone/"))

    def noisy(address, folder):
        raise RuntimeError(f"{address} failed: " + "x" * 500 + "\nsecond line")

    with pytest.raises(DataError) as info:
        locate("mnist", isolated / "other", noisy)
    lines = str(info.value).splitlines()
    assert lines[0] == "mnist not found, and its download failed; nothing was written:" and lines[2] == "  downloader: unnamed"
    mirrors = lines[3:-1]
    assert [m.split(": ", 1)[0] for m in mirrors] == ["  http://127.0.0.1:9/mnist/", f"  {url}gone/"]
    assert all(m.split(": ", 1)[1].startswith("train-images-idx3-ubyte.gz failed: xxx") and len(m.split(": ", 1)[1]) == MAX_SHOWN_ERROR for m in mirrors)
    assert not (isolated / "other").exists() and not [p for p in isolated.iterdir() if p.name.startswith(".")]


# CIFAR-10's binary version: small files in its format, written here (CIFAR-10 itself cannot be fetched on this machine).


def cifar_bytes(n, seed):
    """n records: a label byte, then 1,024 red, 1,024 green and 1,024 blue bytes."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    pixels = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    return np.concatenate([labels[:, None], pixels], 1).tobytes(), labels, pixels.reshape(n, 3, 32, 32)


def cifar_archive(path, records=(20, 20, 20, 20, 20, 30), extra=()):
    """A cifar-10-binary.tar.gz holding cifar-10-batches-bin/{data_batch_1..5,test_batch}.bin."""
    import io
    import tarfile

    from lenet_spec.data import CIFAR_FOLDER, CIFAR_SPLITS

    names = [*CIFAR_SPLITS["train"], *CIFAR_SPLITS["test"]]
    with tarfile.open(path, "w:gz") as tar:
        for name, data in [*extra, *((f"{CIFAR_FOLDER}/{n}", cifar_bytes(k, i)[0]) for i, (n, k) in enumerate(zip(names, records)))]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_cifar_reader(tmp_path):
    import tarfile

    from lenet_spec.data import CIFAR_ARCHIVE, CIFAR_FOLDER, find_dataset, load_split

    cifar_archive(tmp_path / CIFAR_ARCHIVE)
    images, labels = load_split(tmp_path, "train", "cifar10")
    assert images.shape == (100, 3, 32, 32) and images.dtype == np.uint8 and labels.dtype == np.int64
    data, want_labels, want_pixels = cifar_bytes(20, 0)
    assert np.array_equal(images[:20], want_pixels) and np.array_equal(labels[:20], want_labels)  # red plane first, rows first
    test_images, _ = load_split(tmp_path, "test", "cifar10")
    assert test_images.shape == (30, 3, 32, 32)
    with tarfile.open(tmp_path / CIFAR_ARCHIVE) as tar:  # the extracted folder reads the same
        tar.extractall(tmp_path / "x", filter="data")
    assert np.array_equal(load_split(tmp_path / "x", "train", "cifar10")[0], images)
    assert find_dataset("cifar10", tmp_path / "x") == tmp_path / "x" and (tmp_path / "x" / CIFAR_FOLDER).is_dir()
    bad = tmp_path / "bad"
    (bad / CIFAR_FOLDER).mkdir(parents=True)
    for name in ("data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"):
        (bad / CIFAR_FOLDER / name).write_bytes(data[:-1])  # a record short
    with pytest.raises(DataError, match="not a whole number of 3,073-byte CIFAR-10 records"):
        load_split(bad, "train", "cifar10")
    (bad / CIFAR_FOLDER / "data_batch_1.bin").write_bytes(b"\x0b" + data[1:])  # label 11: CIFAR-100's
    with pytest.raises(DataError, match="label 11 out of range"):
        load_split(bad, "train", "cifar10")


def test_cifar_archive_is_read_without_extracting_and_within_bounds(tmp_path, monkeypatch):
    from lenet_spec import data as data_module
    from lenet_spec.data import CIFAR_ARCHIVE, load_split

    (tmp_path / "a").mkdir()
    cifar_archive(tmp_path / "a" / CIFAR_ARCHIVE, extra=[("../../escape.bin", b"x" * 10)])  # a member that extracting would write outside
    assert load_split(tmp_path / "a", "test", "cifar10")[0].shape == (30, 3, 32, 32)
    assert not (tmp_path / "escape.bin").exists() and sorted(p.name for p in (tmp_path / "a").iterdir()) == [CIFAR_ARCHIVE]
    monkeypatch.setattr(data_module, "CIFAR_ARCHIVE_MAX", 50_000)  # a member beyond the bound: refused before it is read
    with pytest.raises(DataError, match="holds more than 50,000 bytes"):
        load_split(tmp_path / "a", "test", "cifar10")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / CIFAR_ARCHIVE).write_bytes(b"not a tarball")
    with pytest.raises(DataError, match="cannot be read"):
        load_split(tmp_path / "b", "test", "cifar10")


@pytest.fixture
def cifar_server(tmp_path, monkeypatch):
    """A small cifar-10-binary.tar.gz served on 127.0.0.1 under cifar10/, its md5 made the expected one."""
    import hashlib

    from lenet_spec import data as data_module
    from lenet_spec.data import CIFAR_ARCHIVE

    root = tmp_path / "served"
    (root / "cifar10").mkdir(parents=True)
    archive = cifar_archive(root / "cifar10" / CIFAR_ARCHIVE)
    monkeypatch.setitem(data_module.CHECKSUMS, "cifar10", {CIFAR_ARCHIVE: hashlib.md5(archive.read_bytes()).hexdigest()})
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", archive
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize("framework", ["torch", "paddle"])
def test_cifar_download_checked_and_cached(isolated, cifar_server, monkeypatch, framework):
    pytest.importorskip(framework)
    downloader = __import__(f"lenet_{framework}.data", fromlist=["downloader"]).downloader
    url, archive = cifar_server
    monkeypatch.setenv("LENET_DATA_MIRROR", url)
    folder = locate("cifar10", downloader=downloader())
    assert folder == cache_dir("cifar10") and (folder / archive.name).read_bytes() == archive.read_bytes()
    assert locate("cifar10") == folder  # found next time
    (folder / archive.name).unlink()
    archive.write_bytes(archive.read_bytes()[:-10])  # the served file no longer has the published md5
    with pytest.raises(DataError, match="cifar-10-binary.tar.gz: checksum mismatch"):
        locate("cifar10", downloader=downloader())
    assert not (folder / archive.name).exists()


@pytest.mark.slow
@pytest.mark.parametrize("framework", ["torch", "paddle"])
def test_cifar_net_trains_on_cifar10(framework, tmp_path, monkeypatch, capsys):
    """--variant cifar-net trains on CIFAR-10 as its tutorial does (here on a small file in its format)."""
    pytest.importorskip(framework)
    from lenet_spec.data import CIFAR_ARCHIVE
    from lenet_train.cli import train_main

    (tmp_path / "data" / "cifar10").mkdir(parents=True)
    cifar_archive(tmp_path / "data" / "cifar10" / CIFAR_ARCHIVE)
    monkeypatch.setenv("LENET_DATA", str(tmp_path / "data"))
    out = tmp_path / "run"
    assert train_main(framework, ["--variant", "cifar-net", "--epochs", "1", "--no-progress", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "cifar-net on cifar10 (100 train / 30 test)" in printed and "final test accuracy" in printed
    assert all((out / name).stat().st_size > 0 for name in ("metrics.jsonl", "curves.png", "predictions.png", "confusion.png"))
    assert train_main(framework, ["--variant", "lenet5", "--dataset", "cifar10", "--out", str(tmp_path / "no")]) == 2
    assert "lenet5 takes 1x28x28 images and cifar10's are 3x32x32" in capsys.readouterr().err
