"""export.serve against hostile clients: bodies that are small but cost much to decode, types a
web page may send without asking, idle and slow connections, rebinding Host names, Ctrl-C
under load. Each server runs under tests/bounded.py's memory bound, and its peak is checked.

The server is `python -m export.serve` in its own process, on a free loopback port, serving an
untrained lenet5 (what it answers does not matter here, only how).
"""

import http.client
import json
import signal
import socket
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

import bounded

pytest.importorskip("fastapi", reason='the serve extra is not installed: pip install -e ".[serve]"')

ROOT = Path(__file__).resolve().parents[1]
# measured: the server's VmHWM after start and a few small requests is 90-93 MiB (onnxruntime, FastAPI, numpy, Pillow)
SERVER_BASELINE_MB = 95
LIMIT_MB = SERVER_BASELINE_MB + 150  # killed past this; the code before the fix reached 2,500 MiB on the tiny stack
TINY_STACK = 290_000  # 2x2 images in a 4 MiB JSON body: the attack
DIGIT = json.dumps([[0.0] * 28] * 10 + [[0.0] * 10 + [1.0] * 8 + [0.0] * 10] * 8 + [[0.0] * 28] * 10).encode()  # a square of ink


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    def __init__(self, port: int, pid: int):
        self.port, self.pid, self.result = port, pid, None

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None, timeout: float = 60):
        """(status, parsed JSON) of one request on its own connection."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body, headers or {})
            response = conn.getresponse()
            data = response.read()
            return response.status, json.loads(data) if response.getheader("Content-Type", "").startswith("application/json") else data
        finally:
            conn.close()

    def post(self, body: bytes, content_type: str = "application/json", **kwargs):
        return self.request("POST", "/v1/predict", body, {"Content-Type": content_type}, **kwargs)

    def rss_mb(self) -> float:
        return bounded._status_kib(self.pid)[0] / 1024

    def interrupt(self) -> None:
        import os

        os.kill(self.pid, signal.SIGINT)


@contextmanager
def serving(model: Path, tmp_path: Path, *flags: str, limit_mb: float = LIMIT_MB, timeout: float = 300):
    """`python -m export.serve MODEL` under bounded.run (killed past `limit_mb`), yielding a
    `Served`; ended with Ctrl-C, its bounded.Result is then in `.result`."""
    port, pidfile, out = free_port(), tmp_path / f"serve-{time.monotonic_ns()}.pid", {}
    command = [
        "sh",
        "-c",
        'echo $$ > "$0"; exec "$@"',
        str(pidfile),
        sys.executable,
        "-m",
        "export.serve",
        str(model),
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
        *flags,
    ]
    thread = threading.Thread(target=lambda: out.update(result=bounded.run(command, limit_mb=limit_mb, timeout=timeout, cwd=ROOT, python=False)))
    thread.start()
    deadline = time.monotonic() + 120
    while True:
        assert thread.is_alive(), out["result"]
        assert time.monotonic() < deadline, "export.serve did not start in 120 s"
        try:
            served = Served(port, int(pidfile.read_text()))
            if served.request("GET", "/healthz", timeout=5)[0] == 200:
                break
        except (OSError, ValueError, http.client.HTTPException):
            time.sleep(0.2)
    try:
        yield served
    finally:
        if thread.is_alive():
            try:
                served.interrupt()
            except ProcessLookupError:  # ended already: the test interrupted it
                pass
        thread.join()
        served.result = out["result"]
    assert not served.result.exceeded, served.result


@pytest.fixture(scope="module")
def model(exported):
    return exported["lenet5", "torch"].path  # conftest's export, shared


def tiny_stack(n: int) -> bytes:
    return ("[" + ",".join(["[[0,0],[0,1]]"] * n) + "]").encode()


# case 1 and 8: a small body of many images


@pytest.mark.slow
def test_a_stack_of_many_tiny_images_is_refused_before_it_is_parsed(model, tmp_path):
    body = tiny_stack(TINY_STACK)
    assert len(body) < 4 * 2**20  # within --max-body: only the count refuses it
    with serving(model, tmp_path) as s:
        before = s.rss_mb()
        t0 = time.perf_counter()
        for _ in range(3):
            status, answer = s.post(body)
            assert status == 413 and "290,000 images" in answer["error"] and "--max-images" in answer["error"], answer
        refused_s = time.perf_counter() - t0
        assert refused_s < 3  # measured: 0.11 s for three (before the fix: 67 s for one, answered 200)
        after = s.rss_mb()
        assert after < before + 30, (before, after)  # measured: 90 -> 103 MiB (the bodies); before the fix 2 GB held afterwards
        status, answer = s.post(tiny_stack(4096))  # at the bound: answered
        assert status == 200 and len(answer["predictions"]) == 4096
        assert s.post(tiny_stack(4097))[0] == 413
        assert s.post(DIGIT)[0] == 200
    # measured: peak 148 MiB with the 4,096-image stack prepared; 2,500 MiB before the fix
    assert s.result.peak_mb < SERVER_BASELINE_MB + 100, s.result


@pytest.mark.slow
def test_the_numbers_of_a_json_body_are_bounded_when_max_body_is_raised(model, tmp_path):
    body = ("[[" + ",".join(["0"] * (5 * 2**20)) + "]]").encode()  # one row of 5 M numbers, 10 MiB
    with serving(model, tmp_path, "--max-body", str(16 * 2**20)) as s:
        status, answer = s.post(body)
        assert status == 413 and "numbers" in answer["error"], answer
    assert s.result.peak_mb < SERVER_BASELINE_MB + 100, s.result  # measured: 161 MiB (the 10 MiB body and its counts)


# case 2 and 3: what a page may send cross-origin; booleans


@pytest.mark.slow
def test_types_a_page_sends_without_asking_get_415_and_booleans_422(model, tmp_path):
    with serving(model, tmp_path) as s:
        for kind in ("application/x-www-form-urlencoded", "text/plain"):
            status, answer = s.post(DIGIT, kind)
            assert status == 415 and "Content-Type" in answer["error"] and "\n" not in answer["error"], (kind, answer)
        for body in (b"[[true, 1], [0, 0.5]]", b"[[0, 0.5], [1, false]]", b"[[true, false]]"):
            status, answer = s.post(body)
            assert status == 422 and "booleans" in answer["error"], (body, answer)
        assert s.post(DIGIT)[0] == 200 and s.post(DIGIT, "application/octet-stream")[0] == 200
    assert s.result.peak_mb < LIMIT_MB, s.result


# case 4: idle and slow connections


@pytest.mark.slow
def test_idle_and_slow_connections_neither_turn_clients_away_nor_stay_open(model, tmp_path):
    with serving(model, tmp_path) as s:
        idle = [socket.create_connection(("127.0.0.1", s.port)) for _ in range(130)]  # more than --limit-concurrency 128
        slow = [socket.create_connection(("127.0.0.1", s.port)) for _ in range(4)]
        opened = time.monotonic()
        head = b"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        statuses = []
        for i in range(8):  # a byte a second from the slow ones, requests from a good client
            for conn in slow:
                try:
                    conn.send(head[i : i + 1])
                except OSError:
                    pass
            t0 = time.monotonic()
            while time.monotonic() - t0 < 1:
                statuses.append(s.request("GET", "/healthz", timeout=10)[0])
        assert statuses.count(200) == len(statuses) and len(statuses) > 20, statuses[:20]  # before the fix: 503 on all
        for conn in idle + slow:
            conn.settimeout(max(0.1, opened + 7 - time.monotonic()))
            try:
                assert conn.recv(100) == b""  # closed by the server: HEAD_TIMEOUT_S 5 after it opened
            except TimeoutError:
                pytest.fail(f"a connection still open {time.monotonic() - opened:.1f} s after it opened")
            except ConnectionResetError:
                pass
            finally:
                conn.close()
    assert s.result.peak_mb < LIMIT_MB, s.result


@pytest.mark.slow
def test_a_body_sent_slowly_is_cut_at_body_timeout(model, tmp_path):
    with serving(model, tmp_path, "--body-timeout", "2", "--limit-concurrency", "1") as s:
        conn = socket.create_connection(("127.0.0.1", s.port))
        conn.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n[")
        time.sleep(0.3)
        assert s.request("GET", "/healthz")[0] == 503  # its request holds the one slot
        t0 = time.monotonic()
        conn.settimeout(10)
        answer = b""
        while b"--body-timeout" not in answer and time.monotonic() - t0 < 10:
            chunk = conn.recv(1000)  # head and body may come in two segments: read to the end
            if not chunk:
                break
            answer += chunk
        conn.close()
        assert answer.startswith(b"HTTP/1.1 408") and b"--body-timeout" in answer, answer
        assert time.monotonic() - t0 < 4  # measured: 1.7 s after the 0.3 s wait: the 2 s bound
        assert s.request("GET", "/healthz")[0] == 200


# case 5: Ctrl-C under load


@pytest.mark.slow
def test_ctrl_c_under_load_ends_in_seconds_with_one_line(model, tmp_path):
    body = tiny_stack(4096)  # the dearest stack allowed: about 1 s to prepare on this VM
    with serving(model, tmp_path) as s:
        answers, stop = [], threading.Event()

        def client():
            while not stop.is_set():
                try:
                    answers.append(s.post(body, timeout=30)[0])
                except (OSError, http.client.HTTPException) as e:
                    answers.append(type(e).__name__)  # cut: the server closed the connection
                    time.sleep(0.05)

        clients = [threading.Thread(target=client) for _ in range(12)]
        for t in clients:
            t.start()
        time.sleep(2)
        t0 = time.monotonic()
        s.interrupt()
        while bounded._status_kib(s.pid)[1] and time.monotonic() - t0 < 60:
            time.sleep(0.05)
        took = time.monotonic() - t0
        stop.set()
        for t in clients:
            t.join(40)
    assert took < 8, took  # measured: 1.6 s alone, 3.6 s beside the 12 clients (GRACEFUL_SHUTDOWN_S 3 at most); before the fix: a CancelledError traceback
    assert s.result.returncode == 130, s.result
    lines = s.result.lines
    assert lines[-1] == "export.serve: interrupted" and "Traceback" not in s.result.stderr and "CancelledError" not in s.result.stderr, s.result
    assert set(answers) <= {200, 503, "RemoteDisconnected", "ConnectionResetError", "ConnectionRefusedError", "BrokenPipeError"}, set(answers)
    assert s.result.peak_mb < LIMIT_MB, s.result


# case 6 and 7: what the service shows, and to whom


@pytest.mark.slow
def test_models_shows_file_names_not_paths(model, tmp_path):
    with serving(model, tmp_path) as s:
        status, answer = s.request("GET", "/v1/models")
    assert status == 200 and answer["models"][0]["file"] == model.name
    assert str(model.parent) not in json.dumps(answer)


@pytest.mark.slow
def test_a_host_that_is_not_this_service_gets_421(model, tmp_path):
    with serving(model, tmp_path, "--allowed-host", "digits.example") as s:
        for host in ("evil.example", f"evil.example:{s.port}", "127.0.0.1.evil.example", ""):
            status, answer = s.request("GET", "/v1/models", headers={"Host": host})
            assert status == 421 and "--allowed-host" in answer["error"] and "\n" not in answer["error"], (host, answer)
        status, _ = s.request("POST", "/v1/predict", DIGIT, {"Host": "evil.example", "Content-Type": "application/json"})
        assert status == 421
        for host in (f"127.0.0.1:{s.port}", "localhost", f"LOCALHOST:{s.port}", f"[::1]:{s.port}", "digits.example", f"digits.example:{s.port}"):
            assert s.request("GET", "/healthz", headers={"Host": host})[0] == 200, host
