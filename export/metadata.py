"""What an exported file says about itself (ONNX metadata_props), written and read here.

Plain Python: export.predict reads it through onnxruntime without onnx, torch or paddle.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

FORMAT = "lenet-parity-onnx"
INPUT_NAME, OUTPUT_NAME, BATCH = "image", "logits", "N"

# Every op the exporters write, all in the default domain: collected by exporting every variant
# (lenet_spec.VARIANTS, seed 3) with both torch and paddle through export.exporter and listing
# the cleaned graphs' op types (14 variants x 2 frameworks, December 2026: torch 2.13 dynamo,
# paddle2onnx 2.1.0, opset 18). export.graph.clean refuses to write any other; export.runtime
# refuses to load any other. None has a subgraph, and only Pad's output size comes from an
# input (its pads, which must be a constant).
EXPORTED_OPS = frozenset(
    {"Add", "AveragePool", "Conv", "Gemm", "MaxPool", "Mul", "Neg", "Pad", "ReduceSum", "Relu", "Reshape", "Sigmoid", "Sub", "Tanh", "Unsqueeze"}
)
MAX_INITIALIZER_VALUES = 2**20  # values in one initializer: the largest exported is lenet-caffe's fc1, 800 x 500 = 400,000
MAX_ATTRIBUTE_INT = 32  # |an integer attribute| or a pad: the largest exported is 5 (a kernel side; pads are at most 2)
MAX_NODES = 1000  # nodes in a graph: the exports have 10 to 39
# Values per image in one tensor of the graph, and in all of them together, by onnx's shape
# inference on every export (the variants x both frameworks, as for EXPORTED_OPS): at most 11,520
# (lenet-caffe's first convolution) and 46,768 (lenet5-1998). At export.runtime's largest call,
# 1,024 images, the bounds are 128 MiB for one tensor and 512 MiB for all, in float32.
MAX_VALUES_PER_IMAGE = 2**15
MAX_TOTAL_PER_IMAGE = 2**17


class MetadataError(ValueError):
    """A model without this project's metadata, or with metadata that does not add up."""


@dataclass(frozen=True)
class ModelInfo:
    variant: str
    dataset: str
    classes: tuple[str, ...]
    channels: int
    height: int
    width: int
    framework: str
    framework_version: str
    spec_version: str
    source: str  # "checkpoint PATH" or "seed S"
    checkpoint_sha256: str = ""  # of the checkpoint file, when exported from one
    seed: int | None = None  # when exported from a freshly built model

    def props(self) -> dict[str, str]:
        """The metadata_props to write, all strings."""
        c, h, w = self.channels, self.height, self.width
        props = {
            "format": FORMAT,
            "variant": self.variant,
            "dataset": self.dataset,
            "classes": json.dumps(list(self.classes)),
            "input": f"{INPUT_NAME}: float32 [{BATCH}, {c}, {h}, {w}], NCHW, values in [0, 1], ink high (white digit on black, as MNIST)",
            "input_layout": "NCHW",
            "input_shape": json.dumps([BATCH, c, h, w]),
            "input_range": "[0, 1]",
            "output": f"{OUTPUT_NAME}: float32 [{BATCH}, {len(self.classes)}], unnormalised scores; softmax for probabilities",
            "source_framework": self.framework,
            "source_framework_version": self.framework_version,
            "spec_version": self.spec_version,
            "source": self.source,
        }
        if self.checkpoint_sha256:
            props["checkpoint_sha256"] = self.checkpoint_sha256
        if self.seed is not None:
            props["seed"] = str(self.seed)
        return props

    @classmethod
    def from_props(cls, props: dict[str, str], where: str = "model") -> "ModelInfo":
        """Read metadata_props back.

        Raises:
            MetadataError: one line, when the file was not exported by this project.
        """
        if props.get("format") != FORMAT:
            raise MetadataError(
                f"{where}: has no lenet-parity metadata (metadata_props 'format' is {props.get('format')!r}); export it with `python -m export`"
            )
        try:
            shape = json.loads(props["input_shape"])
            seed = props.get("seed")
            return cls(
                variant=props["variant"],
                dataset=props["dataset"],
                classes=tuple(json.loads(props["classes"])),
                channels=int(shape[1]),
                height=int(shape[2]),
                width=int(shape[3]),
                framework=props["source_framework"],
                framework_version=props["source_framework_version"],
                spec_version=props["spec_version"],
                source=props["source"],
                checkpoint_sha256=props.get("checkpoint_sha256", ""),
                seed=int(seed) if seed is not None else None,
            )
        except (KeyError, IndexError, TypeError, ValueError) as e:
            raise MetadataError(f"{where}: lenet-parity metadata is incomplete or damaged ({type(e).__name__}: {e}); export it again") from None
