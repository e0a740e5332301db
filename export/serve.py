"""python -m export.serve model.onnx [more.onnx ...]: the exported models as an HTTP service,
with a page to draw digits on.

    GET  /              the draw-a-digit page (plain HTML/CSS/JS from export/static, nothing from the internet)
    POST /v1/predict    a picture (PNG/JPEG/... body, or a multipart upload) or a JSON array
                        ([H][W] or [N][H][W], values in [0, 1]) -> {"model", "predictions"}
    GET  /v1/models     what each loaded file says about itself (variant, data set, labels, hashes)
    GET  /healthz       {"status": "ok"} while the service answers
    GET  /docs          the API, rendered from /openapi.json by the package (no CDN)

Built on FastAPI and uvicorn, the Python ecosystem's usual pair: FastAPI checks the query
parameters and writes the OpenAPI description; uvicorn is the ASGI server. Neither torch nor
paddle is imported: a request goes through export.predict's own reading and preprocessing
(`read_picture`, `as_images`, `model_inputs`, `ranked`), so a file gets the same answer here
as from `python -m export.predict`.

Requests that arrive together are answered by one onnxruntime call (`Batcher`): the first
waits at most --max-wait-ms for others that are already being decoded (a request alone does
not wait), up to --max-batch images. --max-batch 1 turns that off:
each request then runs its own call, concurrently. Reading and preprocessing run in a pool of
one thread per core, so one large picture does not stop the server from answering others.

Bounds: a body over --max-body bytes gets 413 before it is read; a JSON stack of more than
--max-images images, or of more than MAX_JSON_VALUES numbers, gets 413 from a count of its
brackets and commas before it is parsed; a picture is refused from its header when it claims
more than export.predict's MAX_PIXELS (a 50,000 x 50,000 PNG bomb is a few kilobytes); at most
--limit-concurrency requests are taken at once (503 beyond; a connection counts only while it
has a request in flight), and a connection that has not sent a whole request head within
HEAD_TIMEOUT_S is closed (`Connection`). A request whose Host is not a name of this service
gets 421 (DNS rebinding: a page of evil.example resolved to 127.0.0.1); --allowed-host adds names.
"""

# no `from __future__ import annotations`: FastAPI reads the endpoints' annotations (Request, Query) at run time
import argparse
import asyncio
import collections
import io
import ipaddress
import json
import math
import os
import re
import socket
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lenet_spec.checkpoint import sha256
from lenet_spec.cli import HelpFormatter, UsageError

from .metadata import MetadataError, ModelInfo
from .predict import InputError, Unreadable, as_images, model_inputs, ranked, read_picture
from .runtime import DEVICES, RuntimeUnavailable, info_of, provider_of, run, session

STATIC = Path(__file__).resolve().parent / "static"
DEFAULT_MAX_BODY = 4 * 2**20  # bytes: a 12 MP phone JPEG is 3-5 MB; a drawn digit's PNG is 2-10 KB
DEFAULT_MAX_BATCH = 64  # images in one onnxruntime call
DEFAULT_MAX_WAIT_MS = 2.0  # how long the first request of a batch waits for others
DEFAULT_LIMIT_CONCURRENCY = 128  # requests held at once (each at most --max-body): bounds memory; 503 beyond
# A 4 MiB body holds at most 2,675 28x28 images ("0," per value): 4,096 never refuses model-sized images that fit
# the body; it refuses stacks of tiny ones, each as dear to prepare as a full image (0.23 ms: fitted into 28x28).
DEFAULT_MAX_IMAGES = 4096
MAX_JSON_VALUES = 2**22  # numbers in one JSON body: 2.1 M fit in 4 MiB; binds when --max-body is raised
HEAD_TIMEOUT_S = 5.0  # s for a request head (line and headers) to arrive whole, from the connection's opening or its last answer
DEFAULT_BODY_TIMEOUT_S = 60.0  # a body must arrive whole within this of its head: 4 MiB at 0.6 Mbit/s (408 beyond)
GRACEFUL_SHUTDOWN_S = 3  # on Ctrl-C, requests in flight get this long to be answered; then they get 503
LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]")  # Host names always allowed
MAX_TOP = 1000
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
JSON_TYPES = ("application/json",)
PICTURE_TYPES = ("image/",)  # image/png, image/jpeg, ...: Pillow identifies the format from the bytes
# no type, or octet-stream (the page's fallback): told apart by the first byte. Not application/x-www-form-urlencoded or
# text/plain: a web page of any site may send those to this service without the browser asking it first (CORS-simple)
SNIFFED_TYPES = ("", "application/octet-stream")


class StartError(ValueError):
    """The service cannot start as asked; the message is the one line to print."""


class RequestError(Exception):
    """A request answered with an error: `status` and one line naming the problem."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class Batcher:
    """One model's onnxruntime calls. Requests that arrive while others wait are run together:
    a call takes at most `max_batch` images, and a request's images are never split between
    calls unless it alone has more than `max_batch`. The first request waits for others at
    most `max_wait_s`, and only while others are on their way (`arriving`: read, being
    decoded): a request alone runs at once. With max_batch 1, each request runs its own call,
    concurrently in `pool`."""

    def __init__(self, sess, max_batch: int, max_wait_s: float, pool: ThreadPoolExecutor):
        self.sess, self.max_batch, self.max_wait_s, self.pool = sess, max_batch, max_wait_s, pool
        self.pending: collections.deque[tuple[np.ndarray, asyncio.Future]] = collections.deque()
        self.queued = 0  # images in `pending`
        self.arriving = 0  # requests for this model being decoded: the ones worth waiting for
        self.calls = 0  # onnxruntime calls made, and the images they took: mean batch = images / calls
        self.images = 0
        self._count = threading.Lock()
        self.runner = ThreadPoolExecutor(1, thread_name_prefix="onnxruntime")  # one call at a time; it uses every core itself
        self._wake: asyncio.Event | None = None
        self._more: asyncio.Event | None = None
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        if self.max_batch > 1:
            self._wake, self._more = asyncio.Event(), asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.runner.shutdown(wait=False, cancel_futures=True)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        with self._count:
            self.calls += 1
            self.images += len(batch)
        return run(self.sess, batch)

    async def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Logits (N, classes) for a request's images (N, C, H, W)."""
        loop = asyncio.get_running_loop()
        if self.max_batch <= 1:
            return await loop.run_in_executor(self.pool, self._run, batch)
        futures = []
        for start in range(0, len(batch), self.max_batch):
            future = loop.create_future()
            part = batch[start : start + self.max_batch]
            self.pending.append((part, future))
            self.queued += len(part)
            futures.append(future)
        self._wake.set()
        self._more.set()
        return np.concatenate(await asyncio.gather(*futures))

    def arrived(self) -> None:
        """A request counted in `arriving` has reached the queue or failed: stop waiting for it."""
        self.arriving -= 1
        if self._more is not None:
            self._more.set()

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self.pending:
                self._wake.clear()
                await self._wake.wait()
            deadline = loop.time() + self.max_wait_s
            while self.queued < self.max_batch and self.arriving > 0 and (left := deadline - loop.time()) > 0:
                self._more.clear()
                try:
                    await asyncio.wait_for(self._more.wait(), left)
                except TimeoutError:
                    break
            taken, count = [], 0
            while self.pending and (not taken or count + len(self.pending[0][0]) <= self.max_batch):
                part, future = self.pending.popleft()
                self.queued -= len(part)
                if future.cancelled():  # the client went away while it waited
                    continue
                taken.append((part, future))
                count += len(part)
            if not taken:
                continue
            try:
                logits = await loop.run_in_executor(self.runner, self._run, np.concatenate([part for part, _ in taken]))
            except Exception as e:  # onnxruntime's own error types; each waiting request gets it
                for _, future in taken:
                    if not future.done():
                        future.set_exception(e)
                continue
            start = 0
            for part, future in taken:
                if not future.done():
                    future.set_result(logits[start : start + len(part)])
                start += len(part)


@dataclass
class Served:
    """One loaded model file."""

    name: str
    path: Path
    sha256: str
    sess: object
    info: ModelInfo
    batcher: Batcher | None = field(default=None, repr=False)

    def describe(self, default: bool) -> dict:
        i = self.info
        return {
            "name": self.name,
            "default": default,
            "file": self.path.name,  # not the server's folders
            "sha256": self.sha256,
            "variant": i.variant,
            "dataset": i.dataset,
            "labels": list(i.classes),
            "input": {"channels": i.channels, "height": i.height, "width": i.width},
            "source_framework": i.framework,
            "source_framework_version": i.framework_version,
            "spec_version": i.spec_version,
            "source": i.source,
            "checkpoint_sha256": i.checkpoint_sha256 or None,
            "provider": provider_of(self.sess),
            "runs": {"calls": self.batcher.calls, "images": self.batcher.images} if self.batcher else None,
        }


def load_models(specs: list[str], device: str = "auto", threads: int | None = None) -> dict[str, Served]:
    """The model files named on the command line (FILE or NAME=FILE; a file's name is its stem).

    Raises:
        StartError: one line, for a file that is missing, not ONNX, or not exported by this
            project, and for two models of the same name.
    """
    models: dict[str, Served] = {}
    for spec in specs:
        name, _, file = spec.rpartition("=") if "=" in spec and not Path(spec).exists() else ("", "", spec)
        path = Path(file)
        name = name or path.stem
        if not NAME.fullmatch(name):
            raise StartError(f"{spec}: {name!r} cannot name a model (letters, digits, '.', '_', '-'); give one as NAME={file}")
        if name in models:
            raise StartError(f"{spec}: two models are named {name!r} ({models[name].path} and {path}); name one as OTHER={file}")
        if not path.is_file():
            raise StartError(f"{file}: no such file; export one with `python -m export CKPT --out {file}`")
        try:
            sess = session(path, device, threads)
            info = info_of(sess, str(path))
        except (MetadataError, RuntimeUnavailable, ValueError) as e:
            raise StartError(str(e)) from None
        models[name] = Served(name, path, sha256(path.read_bytes()), sess, info)
    return models


def _content_kind(content_type: str, body: bytes) -> str:
    """'json', 'picture' or 'multipart' for a request's Content-Type (and, with none or octet-stream, its first byte)."""
    kind = content_type.split(";")[0].strip().lower()
    if kind in JSON_TYPES or kind.endswith("+json"):
        return "json"
    if kind.startswith(PICTURE_TYPES):
        return "picture"
    if kind == "multipart/form-data":
        return "multipart"
    if kind in SNIFFED_TYPES:
        return "json" if body.lstrip()[:1] in (b"[", b"{") else "picture"
    raise RequestError(415, f"Content-Type {kind[:80]!r} is not taken: send a picture (image/png, image/jpeg, ...), multipart/form-data with a file, or application/json (curl: -H 'Content-Type: image/png')")


def _json_counts(body: bytes) -> tuple[int, int, int]:
    """(depth, elements of the outer array, numbers at most) of a JSON array, from its brackets
    and commas alone, before it is parsed. Exact for arrays of numbers; a string may hold
    brackets or commas, but an array holding strings is refused whatever its counts."""
    b = np.frombuffer(body, np.uint8)
    commas = b == ord(",")
    depth = np.cumsum((b == ord("[")).view(np.int8) - (b == ord("]")).view(np.int8), dtype=np.int16)  # past 32,767: json.loads refuses it
    return int(depth.max(initial=0)), int(np.count_nonzero(commas & (depth == 1))) + 1, int(np.count_nonzero(commas)) + 1


def json_images(body: bytes, colour: bool, max_images: int = DEFAULT_MAX_IMAGES) -> tuple[np.ndarray, bool]:
    """A JSON body -> (images as export.predict.as_images gives them, whether it held one image).
    How many images and numbers it holds is counted before it is parsed, so that a small body
    of many tiny images is refused before json.loads and preprocessing build anything from it.

    Raises:
        RequestError: 413 for more than `max_images` images or MAX_JSON_VALUES numbers; 400
            for a body that is not JSON; 422 for one that is not an array of numbers.
        InputError: from as_images (values, shape).
    """
    depth, outer, values = _json_counts(body)
    if values > MAX_JSON_VALUES:
        raise RequestError(413, f"the JSON body holds up to {values:,} numbers, more than the {MAX_JSON_VALUES:,} this service takes; send fewer images per request")
    if depth >= (4 if colour else 3) and outer > max_images:
        raise RequestError(413, f"the JSON stack holds {outer:,} images, more than the {max_images:,} this service takes per request (--max-images); send them in several requests")
    try:
        value = json.loads(body)
    except (ValueError, RecursionError) as e:  # RecursionError: arrays nested thousands deep
        raise RequestError(400, f"the body is not JSON ({type(e).__name__}: {str(e)[:120]})") from None
    if not isinstance(value, list):
        raise RequestError(422, f"expected a JSON array of images ([H][W] or [N][H][W] numbers in [0, 1]), got a JSON {type(value).__name__}")
    try:
        array = np.asarray(value)
    except (ValueError, OverflowError):  # ragged rows
        raise RequestError(422, "the JSON array is not rectangular: every image needs the same number of rows, every row the same length") from None
    del value
    # NumPy makes [true, 1] integers: without strings, "true" and "false" in the text are JSON's booleans
    booleans = array.dtype.kind == "b" or (array.dtype.kind in "iuf" and (b"true" in body or b"false" in body))
    if booleans or array.dtype.kind not in "uif":
        raise RequestError(422, f"the JSON array holds {'booleans' if booleans else 'values that are not all numbers'}; send numbers in [0, 1]")
    if array.dtype.kind in "iu":
        array = array.astype(np.float64)  # JSON's integers are numbers on [0, 1] like its floats, never 0-255
    return as_images(array, colour), array.ndim == (3 if colour else 2)


def decode(body: bytes, kind: str, info: ModelInfo, max_images: int = DEFAULT_MAX_IMAGES) -> tuple[np.ndarray, bool]:
    """A request body -> the model's input batch (N, C, H, W), and whether the request held one
    image (a picture, or a JSON [H][W]) rather than a stack. Runs in a worker thread.

    Raises:
        RequestError: 400 for bytes that are not a picture or JSON; 413 for a JSON stack over
            `max_images`; 422 for a picture or array that cannot be classified (shape, values,
            no ink, too many pixels).
    """
    colour = info.channels == 3
    try:
        if kind == "json":
            images, single = json_images(body, colour, max_images)
            picture = False
        else:
            images, picture, single = read_picture(io.BytesIO(body), colour)[None], True, True
        return model_inputs(images, info, picture), single
    except Unreadable as e:
        raise RequestError(400, str(e)) from None
    except InputError as e:
        raise RequestError(422, str(e)) from None


def host_name(value: str) -> str:
    """The name in a Host header, lower case, without its port: '[::1]:8000' -> '[::1]'."""
    host = value.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.rpartition(":")[0] if ":" in host else host


async def _send_error(send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), (b"connection", b"close")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Guard:
    """The ASGI layer in front of the application. 421 for a Host that is not one of `hosts` (None:
    any): a page of evil.example that its DNS points at 127.0.0.1 sends Host: evil.example. 503
    beyond `limit` requests in flight: requests, not sockets (uvicorn's own limit counts every
    open connection, so idle ones turn clients away). And a request still running when uvicorn's
    graceful shutdown ends (it cancels it) is answered 503, not with a traceback in the log."""

    def __init__(self, app, hosts: frozenset[str] | None, limit: int | None):
        self.app, self.hosts, self.limit = app, hosts, limit
        self.in_flight = 0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if self.hosts is not None:
            host = next((value.decode("latin-1") for name, value in scope["headers"] if name == b"host"), "")
            if host_name(host) not in self.hosts:
                return await _send_error(send, 421, f"Host {host[:80]!r} is not a name of this service (a page of another site whose name points here?); "
                                                    f"if it is yours, start the service with --allowed-host {host_name(host)[:80] or 'NAME'}")  # fmt: skip
        if self.limit is not None and self.in_flight >= self.limit:
            return await _send_error(send, 503, f"the service is answering {self.limit} requests already (--limit-concurrency); retry shortly")
        started = False

        async def tracked(message):
            nonlocal started
            started = True
            await send(message)

        self.in_flight += 1
        try:
            await self.app(scope, receive, tracked)
        except asyncio.CancelledError:  # only uvicorn's shutdown cancels a request
            if not started:
                await _send_error(send, 503, "the service is shutting down; retry once it is back")
        finally:
            self.in_flight -= 1


def connection_class():
    """uvicorn's h11 protocol, with a deadline on the request head: a connection is closed when
    it has not sent a whole request line and headers HEAD_TIMEOUT_S after it opened or after its
    last answer. uvicorn closes an idle keep-alive connection (timeout_keep_alive) but never one
    that has sent nothing yet, and a byte each second (slowloris) restarts its keep-alive timer;
    h11 bounds a head's size (16 KiB), not its time."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class Connection(H11Protocol):
        head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._watch_head()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self._watch_head()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._watch_head()

        def connection_lost(self, exc) -> None:
            if self.head_timer is not None:
                self.head_timer.cancel()
            super().connection_lost(exc)

        def _watch_head(self) -> None:
            waiting = self.conn.their_state is h11.IDLE and not self.transport.is_closing()  # IDLE: no request under way
            if waiting and self.head_timer is None:
                self.head_timer = self.loop.call_later(HEAD_TIMEOUT_S, self._head_late)
            elif not waiting and self.head_timer is not None:
                self.head_timer.cancel()
                self.head_timer = None

        def _head_late(self) -> None:
            self.head_timer = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.close()

    return Connection


def create_app(models: dict[str, Served], max_body: int = DEFAULT_MAX_BODY, max_batch: int = DEFAULT_MAX_BATCH, max_wait_ms: float = DEFAULT_MAX_WAIT_MS, workers: int | None = None,
               max_images: int = DEFAULT_MAX_IMAGES, hosts: frozenset[str] | None = frozenset(LOCAL_HOSTS), limit_concurrency: int | None = DEFAULT_LIMIT_CONCURRENCY, body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S):  # fmt: skip
    """The FastAPI application serving `models` (the first is the default), behind `Guard`
    (Host names `hosts`, None for any; at most `limit_concurrency` requests in flight)."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, Query, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, JSONResponse
    from starlette.datastructures import UploadFile
    from starlette.exceptions import HTTPException
    from starlette.formparsers import MultiPartException, MultiPartParser
    from starlette.requests import ClientDisconnect

    if not models:
        raise StartError("no model to serve")
    default = next(iter(models))
    pool = ThreadPoolExecutor(workers or os.cpu_count() or 1, thread_name_prefix="prepare")
    for served in models.values():
        served.batcher = Batcher(served.sess, max_batch, max_wait_ms / 1000, pool)

    @asynccontextmanager
    async def lifespan(app):
        for served in models.values():
            served.batcher.start()
        yield
        for served in models.values():
            await served.batcher.stop()
        pool.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title="lenet-parity",
        summary="LeNet models exported to ONNX, served with onnxruntime",
        version="1",
        docs_url=None,  # FastAPI's Swagger UI loads from a CDN; /docs is served by the package instead
        redoc_url=None,
        lifespan=lifespan,
    )

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    @app.exception_handler(RequestError)
    async def request_error(request, e: RequestError):
        return error(e.status, str(e))

    @app.exception_handler(HTTPException)
    async def http_error(request, e: HTTPException):
        if e.status_code == 404:
            return error(404, f"no such page: {request.url.path}; the API is POST /v1/predict, GET /v1/models, GET /healthz (see /docs)")
        return error(e.status_code, str(e.detail))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request, e: RequestValidationError):
        first = e.errors()[0]
        where = " ".join(str(part) for part in first.get("loc", ()))
        return error(422, f"{where}: {first.get('msg', 'invalid')}".strip())

    def pick(name: str | None) -> Served:
        served = models.get(name or default)
        if served is None:
            raise RequestError(404, f"no model named {name!r}; loaded: {', '.join(models)} (GET /v1/models)")
        return served

    async def read_body(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body:
            raise RequestError(413, f"the body is {int(declared):,} bytes, more than the {max_body:,} this service takes (--max-body)")
        chunks, size = [], 0
        try:
            async with asyncio.timeout(body_timeout_s):  # a body sent a byte at a time would hold its --limit-concurrency slot
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > max_body:  # a chunked body, which declares no length
                        raise RequestError(413, f"the body is more than the {max_body:,} bytes this service takes (--max-body)")
                    chunks.append(chunk)
        except TimeoutError:
            raise RequestError(408, f"the body took more than {body_timeout_s:g} s to arrive (--body-timeout)") from None
        except ClientDisconnect:  # it hung up before its body was whole: nobody to answer, nothing to log
            raise RequestError(400, "the client closed the connection before its body was whole") from None
        if not size:
            raise RequestError(400, "the body is empty: send a picture or a JSON array")
        return b"".join(chunks)

    async def multipart_file(request: Request, body: bytes) -> bytes:
        async def stream():
            yield body

        try:
            form = await MultiPartParser(request.headers, stream(), max_files=1, max_fields=16).parse()
        except MultiPartException as e:
            raise RequestError(400, f"the multipart body cannot be read ({e.message})") from None
        files = [value for _, value in form.multi_items() if isinstance(value, UploadFile)]
        if not files:
            raise RequestError(400, "the multipart body holds no file: upload one, e.g. curl -F file=@digit.png")
        data = await files[0].read()
        await form.close()
        if not data:
            raise RequestError(400, "the uploaded file is empty")
        return data

    example = {"model": default, "predictions": [{"class": 7, "label": "7", "prob": 0.9981}, {"class": 3, "label": "3", "prob": 0.0012}, {"class": 2, "label": "2", "prob": 0.0004}]}
    errors = {
        status: {"description": text, "content": {"application/json": {"example": {"error": "one line naming the problem"}}}}
        for status, text in [
            (400, "the body is not a picture or JSON"),
            (404, "no model of that name"),
            (408, "the body took longer than --body-timeout to arrive"),
            (413, "the body is larger than --max-body, or a JSON stack holds more than --max-images images"),
            (421, "a Host header that is not a name of this service (--allowed-host)"),
            (415, "an unsupported Content-Type"),
            (422, "a picture or array that cannot be classified: wrong shape, values outside [0, 1], no ink, too many pixels"),
            (503, "more than --limit-concurrency requests in flight, or the service is shutting down"),
        ]
    }
    body_doc = {
        "required": True,
        "content": {
            "image/png": {"schema": {"type": "string", "format": "binary"}},
            "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {"schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}},
            "application/json": {
                "schema": {"type": "array", "items": {"type": "array"}, "description": "[H][W] (one image) or [N][H][W] numbers in [0, 1], ink high"},
                "example": [[0.0] * 4] * 2,
            },
        },
    }

    @app.post(
        "/v1/predict",
        summary="Classify a picture or arrays of pixels",
        description=(
            "A picture (PNG, JPEG, BMP, GIF, TIFF, WebP, PPM; any size up to 16.7 MP, any colours, dark ink on paper or light on dark) goes "
            "through MNIST's own preprocessing, as in `python -m export.predict`. A JSON array of the model's size with ink high is taken "
            "as it is. One image gives `predictions` as a list of classes; an [N][H][W] stack gives a list of such lists."
        ),
        responses={200: {"description": "the most probable classes, most probable first", "content": {"application/json": {"example": example}}}, **errors},
        openapi_extra={"requestBody": body_doc},
    )
    async def predict(
        request: Request,
        model: str | None = Query(None, description=f"a loaded model's name (default: {default}); GET /v1/models lists them"),
        top: int = Query(3, ge=1, le=MAX_TOP, description="how many classes to return per image (at most the model's classes)"),
    ):
        served = pick(model)
        body = await read_body(request)
        kind = _content_kind(request.headers.get("content-type", ""), body)
        if kind == "multipart":
            body, kind = await multipart_file(request, body), "picture"
        served.batcher.arriving += 1
        try:
            batch, single = await asyncio.get_running_loop().run_in_executor(pool, decode, body, kind, served.info, max_images)
        except RuntimeError:  # the pool is shut down: Ctrl-C
            raise RequestError(503, "the service is shutting down; retry once it is back") from None
        finally:
            served.batcher.arrived()
        try:
            logits = await served.batcher(batch)
        except Exception as e:  # onnxruntime's own error types
            raise RequestError(500, f"onnxruntime failed: {str(e).splitlines()[0][:200] if str(e) else type(e).__name__}") from None
        top = min(top, len(served.info.classes))
        predictions = [[{"class": k, "label": label, "prob": p} for k, label, p in classes] for classes in ranked(logits, served.info, top)]
        return {"model": served.name, "predictions": predictions[0] if single else predictions}

    @app.get("/v1/models", summary="The loaded models and what their files say about themselves")
    async def list_models():
        return {"default": default, "models": [served.describe(name == default) for name, served in models.items()]}

    @app.get("/healthz", summary="Whether the service answers")
    async def healthz():
        return {"status": "ok", "models": list(models)}

    security = {
        "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; connect-src 'self'",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-cache",
    }

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html", headers=security)

    @app.get("/docs", include_in_schema=False)
    async def docs():
        return FileResponse(STATIC / "docs.html", headers=security)

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str):
        path = STATIC / name
        if "/" in name or name.startswith(".") or not path.is_file():
            raise RequestError(404, f"no such file: /static/{name}")
        return FileResponse(path, headers=security)

    def stop_decoding() -> None:
        """Drop the decoding not yet begun (its requests get 503, through Guard): called as the server begins to shut down."""
        pool.shutdown(wait=False, cancel_futures=True)

    app.state.stop_decoding = stop_decoding
    app.add_middleware(Guard, hosts=hosts, limit=limit_concurrency)
    return app


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: a free one).

    Raises:
        StartError: one line, when the address cannot be used.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as e:
        raise StartError(f"--host {host}: not an address of this machine ({e.strerror}); use 127.0.0.1, or 0.0.0.0 for every interface") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as e:
        sock.close()
        hint = "pass another --port (or 0 for a free one)" if e.errno == 98 else "pass another --host or --port"
        raise StartError(f"cannot listen on {host}:{port} ({e.strerror}); {hint}") from None
    sock.set_inheritable(True)
    return sock


def _reach(host: str) -> str:
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if loopback:
        return "only this machine can reach it; --host 0.0.0.0 listens on every interface, for use behind a reverse proxy with TLS"
    return "it listens beyond this machine: anyone who can reach this address can use it"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m export.serve", description="Serve exported ONNX files over HTTP, with a page to draw digits on.", formatter_class=HelpFormatter)
    p.add_argument("models", nargs="+", metavar="MODEL", help="ONNX files written by `python -m export`, each as FILE or NAME=FILE (the first is the default; a file's name is its stem)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on; 0.0.0.0 for every interface")
    p.add_argument("--port", type=int, default=8000, help="port to listen on; 0 for a free one (printed)")
    p.add_argument("--max-batch", type=int, default=DEFAULT_MAX_BATCH, help="images in one onnxruntime call; 1 turns micro-batching off")
    p.add_argument("--max-wait-ms", type=float, default=DEFAULT_MAX_WAIT_MS, help="how long a request waits for others to share its onnxruntime call")
    p.add_argument("--max-body", type=int, default=DEFAULT_MAX_BODY, help="largest request body in bytes (413 beyond)")
    p.add_argument("--body-timeout", type=float, default=DEFAULT_BODY_TIMEOUT_S, help="seconds for a request's body to arrive whole (408 beyond)")
    p.add_argument("--max-images", type=int, default=DEFAULT_MAX_IMAGES, help="images in one JSON request (413 beyond)")
    p.add_argument("--limit-concurrency", type=int, default=DEFAULT_LIMIT_CONCURRENCY, help="requests in flight at once (503 beyond); idle connections do not count")
    p.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                   help=f"a Host name the service answers besides {', '.join(LOCAL_HOSTS)} and --host (421 for others); repeatable; '*' for any")  # fmt: skip
    p.add_argument("--threads", type=int, default=None, help="onnxruntime's threads per call (default: one per core)")
    p.add_argument("--device", default="auto", choices=list(DEVICES), help="onnxruntime provider: CUDA when available (auto), or forced")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"], help="uvicorn's log level")
    p.add_argument("--no-access-log", action="store_true", help="do not log each request")
    args = p.parse_args(argv)
    prog = "export.serve"
    try:
        for flag, value, low in [("--max-batch", args.max_batch, 1), ("--max-body", args.max_body, 1024), ("--max-images", args.max_images, 1), ("--limit-concurrency", args.limit_concurrency, 1)]:
            if value < low:
                raise UsageError(f"{flag} {value}: must be at least {low}")
        if not (0 <= args.port <= 65535):
            raise UsageError(f"--port {args.port}: must be 0 to 65535")
        if not (math.isfinite(args.max_wait_ms) and 0 <= args.max_wait_ms <= 1000):
            raise UsageError(f"--max-wait-ms {args.max_wait_ms}: must be 0 to 1000")
        if not (math.isfinite(args.body_timeout) and args.body_timeout > 0):
            raise UsageError(f"--body-timeout {args.body_timeout}: must be more than 0")
        if args.threads is not None and args.threads < 1:
            raise UsageError(f"--threads {args.threads}: must be at least 1")
        try:
            import fastapi  # noqa: F401
            import uvicorn
        except ImportError as e:
            raise StartError(f"{e.name} is not installed: pip install -e \".[serve]\"") from None
        models = load_models(args.models, args.device, args.threads)
        sock = listen(args.host, args.port)
        hosts = None if "*" in args.allowed_host else frozenset([*LOCAL_HOSTS, host_name(f"[{args.host}]" if ":" in args.host else args.host), *map(host_name, args.allowed_host)])
        app = create_app(models, args.max_body, args.max_batch, args.max_wait_ms, max_images=args.max_images, hosts=hosts, limit_concurrency=args.limit_concurrency, body_timeout_s=args.body_timeout)
    except (UsageError, StartError) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    names = ", ".join(f"{name} ({served.info.variant}, {served.info.dataset}, {provider_of(served.sess)})" for name, served in models.items())
    batching = f"micro-batching up to {args.max_batch} images, {args.max_wait_ms:g} ms wait" if args.max_batch > 1 else "no micro-batching"
    print(f"{prog}: serving {names}; {batching}", flush=True)
    print(f"{prog}: http://{shown}:{port}/ ({_reach(args.host)})", flush=True)
    # no uvicorn limit_concurrency: it counts open sockets, idle ones too; Guard counts requests in flight
    config = uvicorn.Config(app, http=connection_class(), log_level=args.log_level, access_log=not args.no_access_log, timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S)

    class Server(uvicorn.Server):
        async def shutdown(self, sockets=None):
            app.state.stop_decoding()  # what waits for the pool is answered 503 now, not cancelled after the graceful wait
            await super().shutdown(sockets)

    Server(config).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    from lenet_spec.cli import run as run_cli

    run_cli(main, "export.serve")
