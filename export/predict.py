"""python -m export.predict model.onnx IMAGE...: classify images with an exported file alone.

Deployment without torch or paddle: this module imports onnxruntime, numpy and Pillow (and
lenet_spec's NumPy IDX reader); tests check that neither framework is imported.

Files are read by export.readers (every size bounded before it is read) and made into the
model's input by export.preprocess (MNIST's own preprocessing for pictures); a stack goes
through the model CHUNK_PIXELS at a time, counted at the model's input size. A file that cannot
be classified gets one line (InputError) and the others are still classified.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np

from lenet_spec.cli import ArgumentParser, HelpFormatter

from .metadata import MetadataError, ModelInfo
from .preprocess import model_inputs
from .readers import MAX_IMAGES, InputError, file_kind, first_line, load
from .runtime import RuntimeUnavailable, info_of, provider_of, run, session

MAX_TOP = 1000  # classes per image at most, here (--top) and in export.serve (?top=)
# values through prepare and onnxruntime at a time, each image counted at its size or the model's
# input size, whichever is larger (1,024 MNIST images): a stack is never all float at once
CHUNK_PIXELS = 1024 * 28 * 28


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def ranked(logits: np.ndarray, info: ModelInfo, top: int) -> list[list[tuple[int, str, float]]]:
    """Per image, its `top` classes as (class, label, probability), most probable first.

    Raises:
        InputError: when the model's scores do not have the shape its metadata promises.
    """
    if logits.ndim != 2 or logits.shape[1] != len(info.classes):
        raise InputError(f"the model gave scores of shape {logits.shape} for images of {len(info.classes)} classes")
    return [[(int(k), info.classes[k], float(p[k])) for k in np.argsort(-p, kind="stable")[:top]] for p in softmax(logits.astype(np.float64))]


def predict_file(sess, info: ModelInfo, path: Path, top: int, max_images: int = MAX_IMAGES) -> list[dict]:
    """One record per image in the file (at most `max_images`): its top classes and probabilities,
    {"file", "predictions": [{"class", "label", "prob"}, ...], "index" (in a stack)}: the
    service's `predictions` for the same image.

    Images go through `prepare` and onnxruntime `CHUNK_PIXELS` values at a time, each image
    counted at the larger of its own size and the model's input: 40,000 images of 2x2 pixels
    are 40,000 model inputs of 28x28.
    Raises:
        InputError: one line, for a file that cannot be read or classified (onnxruntime's own failures included).
    """
    picture = file_kind(path) == "picture"
    images = load(path, info.channels == 3, max_images)
    if not len(images):
        raise InputError("holds no images")
    step = max(1, CHUNK_PIXELS // max(math.prod(images.shape[1:]), info.channels * info.height * info.width))
    records = []
    for start in range(0, len(images), step):
        batch = model_inputs(images[start : start + step], info, picture)
        try:
            logits = run(sess, batch)
        except Exception as e:  # onnxruntime raises its own Fail/InvalidArgument/... types
            raise InputError(f"onnxruntime failed on it ({first_line(e)})") from None
        if len(logits) != len(batch):
            raise InputError(f"the model gave scores of shape {logits.shape} for {len(batch)} images")
        for i, classes in enumerate(ranked(logits, info, top), start):
            record = {"file": str(path), "predictions": [{"class": k, "label": label, "prob": p} for k, label, p in classes]}  # export.serve's shape
            if len(images) > 1:
                record["index"] = i
            records.append(record)
    return records


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(
        prog="python -m export.predict", description="Classify images with an exported ONNX file (onnxruntime only).", formatter_class=HelpFormatter
    )
    p.add_argument("model", help="an ONNX file written by `python -m export`")
    p.add_argument("images", nargs="+", help="PNG/JPEG files, .npy arrays, IDX files")
    p.add_argument("--top", type=int, default=3, help=f"how many classes to show per image, 1 to {MAX_TOP} (at most the model's classes are shown)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "gpu"], help="onnxruntime provider")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout instead of a report")
    p.add_argument("--max-images", type=int, default=MAX_IMAGES, metavar="N", help="the most images taken from one file (checked from its header)")
    args = p.parse_args(argv)
    if args.max_images < 1:
        p.error(f"--max-images must be 1 or more, got {args.max_images}")
    if not 1 <= args.top <= MAX_TOP:
        print(f"export.predict: error: --top {args.top}: must be 1 to {MAX_TOP}, as export.serve's ?top=", file=sys.stderr)
        return 2
    try:
        sess = session(args.model, args.device)
        info = info_of(sess, args.model)
    except (MetadataError, RuntimeUnavailable, ValueError) as e:
        print(f"export.predict: error: {e}", file=sys.stderr)
        return 2
    top = min(args.top, len(info.classes))
    results, failures = [], []
    for name in args.images:
        try:
            records = predict_file(sess, info, Path(name), top, args.max_images)
        except Exception as e:  # InputError; anything else (MemoryError, a bug) still ends this file only, so --json always prints
            message = str(e) if isinstance(e, InputError) else f"failed ({type(e).__name__}: {first_line(e)})"
            failures.append({"file": name, "error": message})
            print(f"export.predict: {name}: {message}", file=sys.stderr)
            continue
        results += records
        if not args.json:
            for r in records:
                where = f"{name}[{r['index']}]" if "index" in r else name
                print(f"{where}: " + ", ".join(f"{t['label']} {100 * t['prob']:.1f}%" for t in r["predictions"]))
    if args.json:
        print(json.dumps({"model": args.model, "variant": info.variant, "provider": provider_of(sess), "predictions": results, "errors": failures}))
    return 1 if failures else 0


if __name__ == "__main__":
    from lenet_spec.cli import run as run_cli

    run_cli(main, "export.predict")
