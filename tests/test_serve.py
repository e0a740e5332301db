"""export.serve: the HTTP service and its page, driven as other programs and people use them.

The server runs as `python -m export.serve` in its own process on a free loopback port; the
requests are real HTTP. The page is driven in the system's headless Chromium (Debian's
chromium and chromium-driver; skipped where they are not installed).
"""

import hashlib
import http.client
import io
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
from PIL import Image

from benchmarks.serve import Server, drawn_png, expected_classes, load
from export.exporter import export, fresh

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("fastapi", reason='the serve extra is not installed: pip install -e ".[serve]"')


def request(url: str, method: str, path: str, body: bytes | None = None, content_type: str | None = None, headers: dict | None = None, chunked: bool = False):
    """(status, parsed JSON body or raw bytes, headers) of one request."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        h = dict(headers or {})
        if content_type is not None:
            h["Content-Type"] = content_type
        if chunked:
            conn.request(method, path, iter([body[i : i + 65536] for i in range(0, len(body), 65536)]), h, encode_chunked=True)
        else:
            conn.request(method, path, body, h)
        response = conn.getresponse()
        data = response.read()
        kind = response.getheader("Content-Type", "")
        return response.status, json.loads(data) if kind.startswith("application/json") else data, dict(response.getheaders())
    finally:
        conn.close()


def post(url, body, content_type="image/png", path="/v1/predict", **kwargs):
    status, answer, _ = request(url, "POST", path, body, content_type, **kwargs)
    return status, answer


def png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "PNG")
    return buf.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A valid PNG header claiming width x height gray pixels, with a few bytes of data: a bomb's shape."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\x00" * 1000))
        + chunk(b"IEND", b"")
    )


def multipart(fields: list[tuple[str, str | None, bytes]]) -> tuple[bytes, str]:
    """A multipart/form-data body of (name, filename or None, data) parts, and its Content-Type."""
    boundary = "lenet-parity-boundary"
    out = b""
    for name, filename, data in fields:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        out += (b"Content-Type: image/png\r\n" if filename else b"") + b"\r\n" + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


@pytest.fixture(scope="module")
def models(trained_onnx, tmp_path_factory):
    """The trained MNIST lenet5 (served as `digits`), and a Fashion-MNIST model (untrained d2l)."""
    folder = tmp_path_factory.mktemp("serve")
    fashion = export(fresh("d2l", 0, "torch"), folder / "fashion.onnx").path
    return {"digits": Path(trained_onnx[0]), "fashion": Path(fashion), "checkpoint": Path(trained_onnx[1])}


@pytest.fixture(scope="module")
def server(models):
    with Server([f"digits={models['digits']}", str(models["fashion"]), "--max-wait-ms", "5"]) as s:
        yield s


@pytest.fixture(scope="module")
def digits(mnist_test):
    """60 MNIST test images (uint8) and their labels."""
    return mnist_test[0][:60], mnist_test[1][:60]


# what users and programs see


def test_binds_loopback_and_says_how_to_expose_it(server):
    assert urlsplit(server.url).hostname == "127.0.0.1"
    said = "\n".join(server.lines)
    assert "only this machine can reach it" in said and "--host 0.0.0.0" in said
    assert "digits (lenet5, mnist" in said and "fashion (d2l, fashion-mnist" in said


def test_models_health_and_docs(server, models):
    status, answer, _ = request(server.url, "GET", "/healthz")
    assert (status, answer) == (200, {"status": "ok", "models": ["digits", "fashion"]})
    status, answer, _ = request(server.url, "GET", "/v1/models")
    assert status == 200 and answer["default"] == "digits"
    digits, fashion = answer["models"]
    assert (digits["name"], digits["variant"], digits["dataset"], digits["default"]) == ("digits", "lenet5", "mnist", True)
    assert digits["labels"] == [str(i) for i in range(10)] and digits["input"] == {"channels": 1, "height": 28, "width": 28}
    assert digits["sha256"] == hashlib.sha256(models["digits"].read_bytes()).hexdigest()
    assert digits["checkpoint_sha256"] == hashlib.sha256(models["checkpoint"].read_bytes()).hexdigest()
    assert digits["source_framework"] == "torch" and digits["provider"] == "CPUExecutionProvider"
    assert (fashion["dataset"], fashion["labels"][0], fashion["checkpoint_sha256"]) == ("fashion-mnist", "T-shirt/top", None)
    status, spec, _ = request(server.url, "GET", "/openapi.json")
    assert status == 200 and {"/v1/predict", "/v1/models", "/healthz"} <= set(spec["paths"])
    assert set(spec["paths"]["/v1/predict"]["post"]["requestBody"]["content"]) == {"image/png", "image/jpeg", "multipart/form-data", "application/json"}
    for path in ("/", "/docs"):
        status, page, headers = request(server.url, "GET", path)
        assert status == 200 and b"<html" in page
        assert "default-src 'self'" in headers["content-security-policy"]  # nothing from outside the service
        for src in re.findall(rb'(?:src|href)="([^"]+)"', page):
            assert src.startswith(b"/") or src.startswith(b"data:"), src


def test_a_file_gets_the_same_answer_from_the_cli_and_the_service(server, models, digits, tmp_path):
    images, labels = digits
    files = []
    for i, im in enumerate(images[:20]):
        (tmp_path / f"{i}.png").write_bytes(drawn_png(im))  # as the page draws: dark on white, 280 x 280
        Image.fromarray(255 - im).convert("RGB").save(tmp_path / f"{i}.jpg", quality=90)
        files += [tmp_path / f"{i}.png", tmp_path / f"{i}.jpg"]
    stack = images[:20] / 255.0  # float64: the same numbers the JSON carries
    np.save(tmp_path / "stack.npy", stack)
    proc = subprocess.run(
        [sys.executable, "-m", "export.predict", str(models["digits"]), *map(str, files), str(tmp_path / "stack.npy"), "--json", "--top", "3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    records = {(Path(r["file"]).name, r.get("index")): r["predictions"] for r in json.loads(proc.stdout)["predictions"]}
    cli = {key: [(t["class"], t["label"], t["prob"]) for t in classes] for key, classes in records.items()}
    for path in files:
        status, answer = post(server.url, path.read_bytes(), "image/jpeg" if path.suffix == ".jpg" else "image/png", path="/v1/predict?top=3")
        assert status == 200 and answer["model"] == "digits"
        assert answer["predictions"] == records[path.name, None], path.name  # one JSON shape for a prediction, here and in export.predict --json
    status, answer = post(server.url, json.dumps(stack.tolist()).encode(), "application/json", path="/v1/predict?top=3")
    assert status == 200 and len(answer["predictions"]) == 20
    assert [[(p["class"], p["label"], p["prob"]) for p in ps] for ps in answer["predictions"]] == [cli["stack.npy", i] for i in range(20)]
    assert np.mean([cli[f"{i}.png", None][0][0] == labels[i] for i in range(20)]) >= 0.9  # a real model on drawn digits
    status, one = post(server.url, json.dumps(stack[0].tolist()).encode(), "application/json")
    assert status == 200 and isinstance(one["predictions"][0], dict) and len(one["predictions"]) == 3  # [28][28]: one image, default top 3


def test_uploads_model_choice_and_top(server, digits):
    images, labels = digits
    body, kind = multipart([("note", None, b"hello"), ("file", "digit.png", png(images[0]))])
    status, answer = post(server.url, body, kind)
    assert status == 200 and answer["predictions"][0]["class"] == labels[0]
    status, answer = post(server.url, png(images[1]), None)  # curl --data-binary with no type: told apart by its bytes
    assert status == 200 and answer["predictions"][0]["class"] == labels[1]
    status, answer = post(server.url, png(images[0]), path="/v1/predict?model=fashion&top=50")
    assert status == 200 and answer["model"] == "fashion" and len(answer["predictions"]) == 10  # top is capped at the model's classes
    assert {p["label"] for p in answer["predictions"]} >= {"T-shirt/top", "Ankle boot"}
    assert abs(sum(p["prob"] for p in answer["predictions"]) - 1) < 1e-9
    probs = [p["prob"] for p in answer["predictions"]]
    assert probs == sorted(probs, reverse=True)


BAD = {  # name: (body, Content-Type, query, status, words of the error)
    "not an image": (b"this is not a picture", "image/png", "", 400, "not an image"),
    "truncated png": (None, "image/png", "", 400, "not an image"),
    "empty body": (b"", "image/png", "", 400, "empty"),
    "not json": (b"[[0.1, 0.2", "application/json", "", 400, "not JSON"),
    "nested thousands deep": (b"[" * 100_000, "application/json", "", 400, "not JSON"),
    "a json object": (b'{"image": [[0.5]]}', "application/json", "", 422, "JSON array"),
    "ragged rows": (b"[[0.1, 0.2], [0.3]]", "application/json", "", 422, "not rectangular"),
    "5 dimensions": (json.dumps(np.zeros((1, 1, 1, 28, 28)).tolist()).encode(), "application/json", "", 422, "shape"),
    "no images": (b"[]", "application/json", "", 422, "shape"),
    "values above 1": (json.dumps(np.full((28, 28), 2.0).tolist()).encode(), "application/json", "", 422, "[0, 1]"),
    "values 0-255": (json.dumps(np.full((28, 28), 255).tolist()).encode(), "application/json", "", 422, "[0, 1]"),
    "NaN": (b"[[NaN, 0.5]]", "application/json", "", 422, "NaN"),
    "booleans": (b"[[true, false]]", "application/json", "", 422, "booleans"),
    "strings": (b'[["a", "b"]]', "application/json", "", 422, "not all numbers"),
    "empty image": (json.dumps(np.zeros((28, 28)).tolist()).encode(), "application/json", "", 422, "empty"),
    "blank picture": (png(np.full((50, 50), 255, np.uint8)), "image/png", "", 422, "empty"),
    "50,000 x 50,000 png": (png_claiming(50_000, 50_000), "image/png", "", 422, "too large to decode"),
    "5,000 x 5,000 png": (png_claiming(5_000, 5_000), "image/png", "", 422, "5000x5000 pixels"),
    "plain text": (b"7", "text/plain", "", 415, "Content-Type"),
    "multipart without a file": (multipart([("note", None, b"hi")])[0], multipart([])[1], "", 400, "no file"),
    "unknown model": (b"[[0.5]]", "application/json", "?model=resnet", 404, "no model named 'resnet'"),
    "top 0": (b"[[0.5]]", "application/json", "?top=0", 422, "top"),
    "top not a number": (b"[[0.5]]", "application/json", "?top=many", 422, "top"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_gets_its_status_and_one_line(server, digits, case):
    body, kind, query, status, words = BAD[case]
    if body is None:
        body = png(digits[0][0])[:60]
    got, answer = post(server.url, body, kind, path="/v1/predict" + query)
    assert got == status, answer
    assert set(answer) == {"error"} and words in answer["error"] and "\n" not in answer["error"], answer


def test_oversized_bodies_get_413_before_they_are_read(server):
    big = b"\x00" * (5 * 2**20)  # over the default 4 MiB
    t0 = time.perf_counter()
    status, answer = post(server.url, big, "image/png")
    assert status == 413 and "--max-body" in answer["error"]
    status, answer = post(server.url, big, "image/png", chunked=True)  # no Content-Length: counted as it arrives
    assert status == 413 and "--max-body" in answer["error"]
    assert time.perf_counter() - t0 < 10
    status, answer, _ = request(server.url, "GET", "/no/such/page")
    assert status == 404 and "/v1/predict" in answer["error"]


def vm_hwm_mb(pid: int) -> float:
    """A process's peak resident memory so far (Linux), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


@pytest.mark.slow
def test_bad_input_neither_takes_the_server_down_nor_holds_up_others(server, models, digits):
    """Bombs, oversized bodies and garbage sent without pause while 4 clients classify digits:
    every good request is answered right, none waits long, and the server's memory stays bounded."""
    images, _ = digits
    # the garbage is fixed: random bytes after "GIF89a" claim a size Pillow refuses (422) about a third of the time
    good = [(png(im), "image/png", c) for im, c in zip(images, expected_classes(str(models["digits"]), [(png(im), "image/png") for im in images]))]
    quiet = load(server.url, good * 2, 4)
    bad = [
        (png_claiming(50_000, 50_000), "image/png", 422),
        (b"\x00" * (5 * 2**20), "image/png", 413),
        (b"GIF89a" + np.random.default_rng(0).bytes(3000), "image/gif", 400),
        (b"[" * 100_000, "application/json", 400),
        (png(np.full((4096, 4096), 255, np.uint8)), "image/png", 422),
    ]
    stop, answered, wrong = threading.Event(), [], []

    def attacker():
        while not stop.is_set():
            for body, kind, status in bad:
                got, _ = post(server.url, body, kind)
                (answered if got == status else wrong).append(got)

    threads = [threading.Thread(target=attacker) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        busy = load(server.url, good * 4, 4)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert busy["errors"] == 0 and quiet["errors"] == 0, busy["first_error"]
    assert len(answered) >= 10 and not wrong, wrong
    # measured on a 2-core VM: p99 80 ms alone, 140 ms beside the attackers (the 4096 x 4096 blank page is decoded, 16.7 MP
    # is allowed, and reduced to 1024 x 1024 as it is read; before that reduction: p99 2,140 ms and 710 MB)
    assert busy["p99_ms"] < 1000, busy
    status, answer, _ = request(server.url, "GET", "/healthz")
    assert status == 200 and answer["status"] == "ok"
    assert vm_hwm_mb(server.proc.pid) < 512  # measured: 200 MB peak; the bomb decoded would need 2.5 GB


def test_micro_batching_answers_each_request_with_its_own_images(server, models, mnist_test):
    """16 clients at once: requests share onnxruntime calls (mean batch > 1), and every answer is
    the one its image gets alone."""
    images = mnist_test[0][100:420]
    payload = [(json.dumps((im / 255.0).tolist()).encode(), "application/json") for im in images]
    expected = expected_classes(str(models["digits"]), payload)
    assert len(set(expected)) == 10
    before = request(server.url, "GET", "/v1/models")[1]["models"][0]["runs"]
    result = load(server.url, [(body, kind, c) for (body, kind), c in zip(payload, expected)], 16)
    after = request(server.url, "GET", "/v1/models")[1]["models"][0]["runs"]
    assert result["errors"] == 0 and result["requests"] == len(images), result["first_error"]
    assert after["images"] - before["images"] == len(images)
    assert after["calls"] - before["calls"] < len(images)  # measured: 320 images in 22 calls


def test_a_stack_larger_than_a_batch_is_split_and_answered_in_order(server, models, mnist_test):
    images = mnist_test[0][500:650]  # 150 images: 64 + 64 + 22 with --max-batch 64
    from export.runtime import info_of, run, session
    from export.app import decode

    stack = (images / 255.0).tolist()
    sess = session(models["digits"])
    expected = run(sess, decode(json.dumps(stack).encode(), "json", info_of(sess, "digits"))[0]).argmax(1).tolist()
    before = request(server.url, "GET", "/v1/models")[1]["models"][0]["runs"]
    status, answer = post(server.url, json.dumps(stack).encode(), "application/json", path="/v1/predict?top=1")
    after = request(server.url, "GET", "/v1/models")[1]["models"][0]["runs"]
    assert status == 200 and len(answer["predictions"]) == 150
    assert [ps[0]["class"] for ps in answer["predictions"]] == expected
    assert (after["calls"] - before["calls"], after["images"] - before["images"]) == (3, 150)


@pytest.mark.slow
def test_without_micro_batching_each_request_runs_alone(models, mnist_test):
    images = mnist_test[0][:64]
    payload = [(png(im), "image/png") for im in images]
    expected = expected_classes(str(models["digits"]), payload)
    with Server([str(models["digits"]), "--max-batch", "1"]) as s:
        assert "no micro-batching" in "\n".join(s.lines)
        result = load(s.url, [(b, k, c) for (b, k), c in zip(payload, expected)], 8)
        runs = request(s.url, "GET", "/v1/models")[1]["models"][0]["runs"]
    assert result["errors"] == 0 and runs == {"calls": 64, "images": 64}
    for key in ("requests_per_s", "p50_ms", "p99_ms"):
        assert result[key] > 0


def serve_fails(*args: str, timeout: float = 120) -> str:
    proc = subprocess.run([sys.executable, "-m", "export.serve", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("export.serve: error: "), proc.stderr
    return lines[0]


@pytest.mark.slow
def test_a_checkpoint_given_as_a_model_gets_the_export_command(tmp_path):
    """protobuf's parse error, passed through before; export.predict and export.verify: test_export."""
    import pickle
    import zipfile

    with zipfile.ZipFile(tmp_path / "best.pt", "w") as z:  # torch.save's zip
        z.writestr("best/data.pkl", b"")
    (tmp_path / "last.pdparams").write_bytes(pickle.dumps({"format": "lenet-parity-checkpoint"}, protocol=4))
    for path, holds in [
        (tmp_path / "best.pt", "a torch checkpoint (torch.save's zip)"),
        (tmp_path / "last.pdparams", "a paddle checkpoint (paddle.save's pickle)"),
    ]:
        line = serve_fails(str(path))
        assert line == (
            f"export.serve: error: {path} holds {holds}, not an ONNX file; export it first: python -m export {path} --out {path.with_suffix('.onnx')}"
        )


@pytest.mark.slow
def test_start_up_failures_are_one_line(models, tmp_path):
    import onnx

    assert "no such file" in serve_fails(str(tmp_path / "missing.onnx"))
    (tmp_path / "corrupt.onnx").write_bytes(np.random.default_rng(0).bytes(2000))
    assert "cannot load it" in serve_fails(str(tmp_path / "corrupt.onnx"))
    plain = onnx.load(models["fashion"])
    del plain.metadata_props[:]
    onnx.save(plain, tmp_path / "plain.onnx")
    assert "has no lenet-parity metadata" in serve_fails(str(tmp_path / "plain.onnx"))
    shutil.copy(models["fashion"], tmp_path / "digits.onnx")
    assert "two models are named 'digits'" in serve_fails(f"digits={models['digits']}", str(tmp_path / "digits.onnx"))
    assert "--max-batch 0" in serve_fails(str(models["digits"]), "--max-batch", "0")
    assert "--host" in serve_fails(str(models["digits"]), "--host", "no.such.host.invalid")
    with Server([str(models["fashion"])]) as s:
        taken = urlsplit(s.url).port
        assert f"cannot listen on 127.0.0.1:{taken}" in serve_fails(str(models["digits"]), "--port", str(taken))


@pytest.mark.slow
def test_beyond_limit_concurrency_503_and_ctrl_c_ends_quietly(models):
    import signal
    import socket

    with Server([str(models["digits"]), "--limit-concurrency", "2"]) as s:
        parts = urlsplit(s.url)
        held = []
        for _ in range(2):  # two requests in flight, their bodies not sent: idle connections do not count (test_serve_hostile)
            conn = socket.create_connection((parts.hostname, parts.port))
            conn.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n[")
            held.append(conn)
        time.sleep(0.3)
        status, _, _ = request(s.url, "GET", "/healthz")
        assert status == 503  # a third is turned away, not queued without bound
        for conn in held:
            conn.close()
        time.sleep(0.5)
        assert request(s.url, "GET", "/healthz")[0] == 200
        s.proc.send_signal(signal.SIGINT)
        assert s.proc.wait(30) == 130  # as every command of the project on Ctrl-C, after uvicorn's graceful shutdown
        said = s.stderr()
        assert said.rstrip().endswith("export.serve: interrupted") and "Traceback" not in said


def test_the_service_imports_neither_framework(models):
    code = (
        "import sys, export.app as a, export.serve as s\n"
        f"app = a.create_app(s.load_models([{str(models['digits'])!r}]))\n"
        "print(sorted(m for m in ('torch', 'paddle') if m in sys.modules))"
    )  # fmt: skip (onnx is imported: it checks each graph)
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


# the page, in a real browser

CHROMIUM = [shutil.which(n) for n in ("chromium", "chromium-browser")]
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium driven by Selenium, pointed at the system's browser and driver (Selenium
    Manager told to stay offline: it downloads nothing)."""
    webdriver = pytest.importorskip("selenium.webdriver", reason='selenium is not installed: pip install -e ".[test]"')
    binary = next((b for b in CHROMIUM if b), None)
    if binary is None or CHROMEDRIVER is None:
        pytest.skip("no Chromium here: apt-get install chromium chromium-driver (.ci/run does)")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"
    options = Options()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=900,700"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def draw(driver, stroke: list[tuple[float, float]]) -> None:
    """One stroke on the drawing pad with pointer events: down, moves, up (points as fractions of the pad)."""
    from selenium.webdriver.common.actions import interaction
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.common.actions.pointer_input import PointerInput

    left, top, width, height = driver.execute_script(
        "const r = document.getElementById('pad').getBoundingClientRect(); return [r.left, r.top, r.width, r.height]"
    )
    actions = ActionBuilder(driver, mouse=PointerInput(interaction.POINTER_MOUSE, "pen"))
    x, y = stroke[0]
    actions.pointer_action.move_to_location(int(left + x * width), int(top + y * height)).pointer_down()
    for x, y in stroke[1:]:
        for _ in range(4):  # several moves per segment, as a hand gives
            actions.pointer_action.move_to_location(int(left + x * width), int(top + y * height))
    actions.pointer_action.pointer_up()
    actions.perform()


def shown(driver, timeout: float = 20) -> str:
    """The class the page shows once its answer has arrived."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(lambda d: d.execute_script("return document.getElementById('prediction').dataset.class"))


@pytest.mark.slow
def test_a_person_draws_a_seven_and_sees_it(browser, server, tmp_path):
    browser.get(server.url + "/")
    assert browser.title.startswith("Draw a digit")
    models = browser.execute_script("return [...document.querySelectorAll('#model option')].map(o => o.value)")
    assert models == ["digits", "fashion"]
    draw(browser, [(0.22, 0.2), (0.5, 0.2), (0.78, 0.2), (0.66, 0.45), (0.55, 0.68), (0.45, 0.88)])
    assert shown(browser) == "7"
    rows = browser.execute_script("return [...document.querySelectorAll('#classes li')].map(li => [li.dataset.class, li.querySelector('.pct').textContent])")
    assert len(rows) == 5 and rows[0][0] == "7" and float(rows[0][1].rstrip("%")) > 50
    assert browser.find_element("id", "guess").text == "7"
    browser.save_screenshot(str(tmp_path / "seven.png"))
    assert Image.open(tmp_path / "seven.png").size[0] > 0
    outside = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name).filter(n => !n.startsWith(location.origin))")
    assert outside == []  # nothing fetched from anywhere but the service
    browser.find_element("id", "clear").click()
    assert browser.execute_script("return document.getElementById('prediction').dataset.class") == ""
    draw(browser, [(0.5, 0.15), (0.5, 0.5), (0.5, 0.88)])
    assert shown(browser) == "1"


@pytest.mark.slow
def test_the_page_takes_a_picture_file_and_fits_a_phone(browser, server, digits, tmp_path):
    images, labels = digits
    browser.get(server.url + "/")
    path = tmp_path / "digit.png"
    path.write_bytes(drawn_png(images[3]))
    browser.find_element("id", "file").send_keys(str(path))
    assert shown(browser) == str(labels[3])
    browser.set_window_size(390, 844)  # a phone
    try:
        time.sleep(0.3)
        scroll, inner = browser.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
        assert scroll <= inner  # no sideways scrolling
        pad = browser.execute_script("const r = document.getElementById('pad').getBoundingClientRect(); return [r.left, r.right]")
        assert pad[0] >= 0 and pad[1] <= inner
        browser.find_element("id", "clear").click()
        draw(browser, [(0.22, 0.2), (0.78, 0.2), (0.45, 0.88)])
        assert shown(browser) == "7"
        browser.save_screenshot(str(tmp_path / "phone.png"))
    finally:
        browser.set_window_size(900, 700)


@pytest.mark.slow
def test_the_docs_page_lists_the_api(browser, server):
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server.url + "/docs")
    WebDriverWait(browser, 20).until(lambda d: d.find_elements("css selector", "#operations section"))
    text = browser.find_element("id", "operations").text
    assert "/v1/predict" in text and "/v1/models" in text and "413" in text
