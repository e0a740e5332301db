"""python -m benchmarks.serve MODEL.onnx: export.serve under load on loopback.

N concurrent clients (threads, one keep-alive HTTP connection each) post MNIST test images to
two servers started as `python -m export.serve`, each in its own process, one with
micro-batching (the defaults) and one without (--max-batch 1), loaded in turns. Reported per run: requests/s, p50/p99/max latency,
errors (any answer that is not 200 with the image's expected class; must be zero), and the
mean batch onnxruntime saw. Beside them, the same work in process: onnxruntime alone on one
image, and the whole request path (decode, preprocess, run) without HTTP.

Two bodies: the PNG the drawing page sends (a test image drawn at 280x280, dark on white, so
it takes MNIST's preprocessing) and a JSON [28][28] array (taken as it is). Clients and server
share the machine's cores: the figures are the pair's, on loopback.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from lenet_spec.cli import ArgumentParser, add_json_option

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 120


class Server:
    """`python -m export.serve` on a free loopback port, in its own process."""

    def __init__(self, models: list[str], *flags: str):
        command = [sys.executable, "-m", "export.serve", *models, "--port", "0", "--no-access-log", "--log-level", "warning", *flags]
        self.proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        deadline = time.monotonic() + START_TIMEOUT_S
        self.url = None
        while self.url is None:
            line = self.proc.stdout.readline()
            if not line:
                err = self.proc.stderr.read().strip()
                raise RuntimeError(f"export.serve did not start: {err.splitlines()[-1] if err else 'no output'}")
            self.lines.append(line.rstrip("\n"))
            if "http://" in line:
                self.url = line.split("http://", 1)[1].split()[0]
                self.url = "http://" + self.url.rstrip("/")
            if time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"export.serve gave no address in {START_TIMEOUT_S} s")
        self._stderr: list[str] = []
        self._drains = [
            threading.Thread(target=self.proc.stdout.read, daemon=True),
            threading.Thread(target=lambda: self._stderr.append(self.proc.stderr.read()), daemon=True),
        ]
        for t in self._drains:  # keep its pipes from filling
            t.start()

    def stderr(self) -> str:
        """What the server wrote on stderr, once it has ended."""
        for t in self._drains:
            t.join(30)
        return "".join(self._stderr)

    def get(self, path: str) -> dict:
        parts = urlsplit(self.url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        try:
            conn.request("GET", path)
            return json.loads(conn.getresponse().read())
        finally:
            conn.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def load(url: str, requests: list[tuple[bytes, str, int | None]], clients: int, time_bound_s: float = 120.0, path: str = "/v1/predict") -> dict:
    """Post `requests` (body, Content-Type, expected top class or None) from `clients` threads,
    each request once, as fast as the server answers.

    Returns:
        requests/s, latency p50/p99/max in ms, the count sent, errors (not 200, or another class
        than expected) and the first error's text. Stops at `time_bound_s`, saying so.
    """
    parts = urlsplit(url)
    latencies: list[float] = []
    errors: list[str] = []
    taken = [0]
    lock = threading.Lock()
    next_index = iter(range(len(requests)))
    deadline = time.monotonic() + time_bound_s
    start = threading.Barrier(clients + 1)

    def client() -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        start.wait()
        mine, bad = [], []
        while time.monotonic() < deadline:
            with lock:
                i = next(next_index, None)
                taken[0] += i is not None
            if i is None:
                break
            body, content_type, expected = requests[i]
            t0 = time.perf_counter()
            try:
                conn.request("POST", path, body, {"Content-Type": content_type})
                response = conn.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException) as e:
                bad.append(f"request {i}: {type(e).__name__}: {e}")
                conn.close()
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
                continue
            mine.append(time.perf_counter() - t0)
            if response.status != 200:
                bad.append(f"request {i}: {response.status} {data[:200]!r}")
            elif expected is not None:
                predictions = json.loads(data)["predictions"]
                if predictions[0]["class"] != expected:
                    bad.append(f"request {i}: class {predictions[0]['class']}, expected {expected}")
        conn.close()
        with lock:
            latencies.extend(mine)
            errors.extend(bad)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - t0
    lat = np.array(latencies) * 1e3 if latencies else np.zeros(1)
    return {
        "clients": clients,
        "requests": len(latencies),
        "seconds": seconds,
        "requests_per_s": len(latencies) / seconds,
        "p50_ms": float(np.percentile(lat, 50)),
        "p99_ms": float(np.percentile(lat, 99)),
        "max_ms": float(lat.max()),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "stopped_at_time_bound": taken[0] < len(requests),
    }


def drawn_png(image: np.ndarray, side: int = 280) -> bytes:
    """An MNIST image as the drawing page sends it: dark ink on white, `side` x `side` PNG."""
    from PIL import Image

    picture = Image.fromarray(255 - image).resize((side, side), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    picture.save(buf, "PNG")
    return buf.getvalue()


def bodies(images: np.ndarray, kind: str) -> list[tuple[bytes, str]]:
    if kind == "png":
        return [(drawn_png(im), "image/png") for im in images]
    return [(json.dumps(np.round(im / 255.0, 4).tolist()).encode(), "application/json") for im in images]


def expected_classes(model: str, payload: list[tuple[bytes, str]]) -> list[int]:
    """The top class of each body (one image each), found in process with the service's own functions."""
    from export.runtime import info_of, run, session
    from export.app import _content_kind, decode

    sess = session(model)
    info = info_of(sess, model)
    return [int(run(sess, decode(body, _content_kind(kind, body), info)[0]).argmax(1)[0]) for body, kind in payload]


def in_process(model: str, payload: list[tuple[bytes, str]], reps: int) -> dict:
    """p50 of onnxruntime alone on one image, and of the request path without HTTP."""
    from export.runtime import info_of, run, session
    from export.app import _content_kind, decode

    sess = session(model)
    info = info_of(sess, model)
    body, kind = payload[0]
    x = decode(body, _content_kind(kind, body), info)[0]

    def p50(fn) -> float:
        for _ in range(20):
            fn()
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return float(np.median(times) * 1e3)

    return {"onnxruntime_p50_ms": p50(lambda: run(sess, x)), "request_path_p50_ms": p50(lambda: run(sess, decode(body, _content_kind(kind, body), info)[0]))}


def measure(
    model: str, images: np.ndarray, clients: tuple[int, ...], per_client: int, kinds: tuple[str, ...] = ("png", "json"), rounds: int = 3, log=print
) -> list[dict]:
    """Every (body kind, batching, clients) figure. Both servers run at once and are loaded in
    turns, `rounds` times each (with micro-batching, then without, then again), so that a slow
    minute of the machine does not fall on one of them; the round with the most requests/s is
    kept, and the errors of every round are counted."""
    rows = []
    payloads = {kind: bodies(images, kind) for kind in kinds}
    expected = {kind: expected_classes(model, payload) for kind, payload in payloads.items()}
    local = {kind: in_process(model, payload, 200) for kind, payload in payloads.items()}
    for kind in kinds:
        log(
            f"serving {kind:4} in process: onnxruntime p50 {local[kind]['onnxruntime_p50_ms']:.3f} ms, request path without HTTP p50 "
            f"{local[kind]['request_path_p50_ms']:.3f} ms"
        )
    with Server([model]) as batched, Server([model], "--max-batch", "1") as alone:
        servers = {"micro-batching": batched, "none": alone}
        for kind in kinds:
            requests = [(body, content_type, expected[kind][i]) for i, (body, content_type) in enumerate(payloads[kind])]
            for server in servers.values():
                load(server.url, requests[:50], 4)  # warm-up
            for n in clients:
                wanted = [requests[i % len(requests)] for i in range(n * per_client)]
                best: dict[str, dict] = {}
                for _ in range(rounds):
                    for batching, server in servers.items():
                        before = server.get("/v1/models")["models"][0]["runs"]
                        r = load(server.url, wanted, n)
                        after = server.get("/v1/models")["models"][0]["runs"]
                        calls = after["calls"] - before["calls"]
                        r.update(
                            body=kind,
                            batching=batching,
                            rounds=rounds,
                            mean_batch=(after["images"] - before["images"]) / calls if calls else 0.0,
                            **local[kind],
                        )
                        errors = best[batching]["errors"] + r["errors"] if batching in best else r["errors"]
                        if batching not in best or r["requests_per_s"] > best[batching]["requests_per_s"]:
                            best[batching] = r
                        best[batching]["errors"] = errors
                        best[batching]["first_error"] = best[batching]["first_error"] or r["first_error"]
                for r in best.values():
                    rows.append(r)
                    log(
                        f"serving {kind:4} {r['batching']:14} {n:3} clients: {r['requests_per_s']:7,.0f} requests/s, p50 {r['p50_ms']:6.2f} ms, p99 "
                        f"{r['p99_ms']:6.2f} ms, "
                        f"max {r['max_ms']:6.1f} ms, mean batch {r['mean_batch']:4.1f}, errors "
                        f"{r['errors']}" + (f" ({r['first_error']})" if r["errors"] else "")
                    )
    return rows


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog="python -m benchmarks.serve", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="an ONNX file written by `python -m export` (an MNIST model)")
    p.add_argument("--clients", default="1,8,32", help="comma-separated numbers of concurrent clients (default: 1,8,32)")
    p.add_argument("--requests-per-client", type=int, default=150, help="requests each client sends in a round (default: 150)")
    p.add_argument("--rounds", type=int, default=3, help="turns of each server per figure; the best is kept (default: 3)")
    p.add_argument("--data-dir", default=None, help="folder holding MNIST (default: the usual places)")
    add_json_option(p, "the rows")
    args = p.parse_args(argv)
    from lenet_spec.checkpoint import atomic_write
    from lenet_spec.cli import JSON_STDOUT, UsageError, check_output, report_to_stderr
    from lenet_spec.data import DataError, find_dataset, load_split

    try:
        clients = tuple(int(c) for c in args.clients.split(","))
        if not clients or min(clients) < 1 or args.requests_per_client < 1 or args.rounds < 1:
            raise ValueError
    except ValueError:
        print(f"benchmarks.serve: error: --clients {args.clients} / --requests-per-client {args.requests_per_client}: positive whole numbers", file=sys.stderr)
        return 2
    folder = find_dataset("mnist", args.data_dir and Path(args.data_dir))
    try:
        if args.json not in (None, JSON_STDOUT):
            check_output(args.json, "--json", inputs=[args.model, args.data_dir, folder])
    except UsageError as e:
        print(f"benchmarks.serve: error: {e}", file=sys.stderr)
        return 2
    if folder is None:
        print("benchmarks.serve: error: MNIST not found: pass --data-dir or set LENET_DATA", file=sys.stderr)
        return 2
    try:
        images = load_split(folder, "test")[0][:256]
    except DataError as e:
        print(f"benchmarks.serve: error: {e}", file=sys.stderr)
        return 2
    try:
        with report_to_stderr(args.json) as stdout:  # --json alone: stdout carries the JSON, the rows go to stderr
            rows = measure(args.model, images, clients, args.requests_per_client, rounds=args.rounds)
    except (RuntimeError, ValueError) as e:
        print(f"benchmarks.serve: error: {e}", file=sys.stderr)
        return 2
    text = json.dumps({"cores": os.cpu_count(), "rows": rows}, indent=2) + "\n"
    if stdout is not None:
        stdout.write(text)
    elif args.json:
        try:
            atomic_write(args.json, lambda tmp: Path(tmp).write_text(text))
        except OSError as e:
            print(f"benchmarks.serve: error: {e}", file=sys.stderr)
            return 2
    return 1 if any(r["errors"] for r in rows) else 0


if __name__ == "__main__":
    from lenet_spec.cli import run as run_cli

    run_cli(main, "benchmarks.serve")
