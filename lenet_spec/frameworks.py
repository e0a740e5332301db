"""The frameworks the project builds every network in: one registry, which every caller loops over.

Each framework has a package (`lenet_torch`, `lenet_paddle`) with the same file names; what a
layer above needs from a framework is a function in one of those files, found here by name
(`module("torch", "bridge")`), never by importing torch or paddle outside its package. This
module imports neither: a framework package is imported on first use, with the line to install
it when it is missing.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType


@dataclass(frozen=True)
class Framework:
    """One framework: its name, its package, its checkpoint suffix, how to install it, how to launch a job."""

    name: str  # 'torch': the word in flags, checkpoints' envelopes and the mapping table
    package: str  # the project's package for it
    import_name: str  # the framework's own top-level module
    suffix: str  # its own checkpoint format
    install: str  # the command that installs its CPU build
    launcher: str  # how a multi-process training job is started
    launch_env: tuple[str, str, str]  # the variables its launcher sets: (rank, world size, local rank)
    distributions: tuple[str, ...]  # the pip packages that provide it: its CPU one first, then a GPU one of another name
    gpu_install: str  # the command that replaces a CPU build by the CUDA build for wheel tag {tag} (docs/INSTALL-GPU.md)
    onnx_min_opset: int | None = None  # the lowest opset its ONNX exporter writes (None: the exporter's own range)


REGISTRY: tuple[Framework, ...] = (
    Framework(
        "torch",
        "lenet_torch",
        "torch",
        ".pt",
        "pip install torch",
        "torchrun --nproc_per_node N -m lenet_torch.train ...",
        ("RANK", "WORLD_SIZE", "LOCAL_RANK"),  # torchrun (torch.distributed.run)
        ("torch",),
        "pip install --force-reinstall torch=={base} --index-url "
        "https://download.pytorch.org/whl/{tag}",  # cu126, cu130: torch 2.13's CUDA builds (pytorch's RELEASE.md)
        18,  # the dynamo exporter's floor
    ),
    Framework(
        "paddle",
        "lenet_paddle",
        "paddle",
        ".pdparams",
        "pip install paddlepaddle",
        "python -m paddle.distributed.launch --nproc_per_node N lenet_paddle/train.py ...",
        ("PADDLE_TRAINER_ID", "PADDLE_TRAINERS_NUM", "PADDLE_LOCAL_RANK"),  # paddle.distributed.launch / spawn
        ("paddlepaddle", "paddlepaddle-gpu"),
        "pip uninstall -y paddlepaddle && python -m pip install paddlepaddle-gpu=={base} -i "
        "https://www.paddlepaddle.org.cn/packages/stable/{tag}/",  # cu126 and cu129 among others (Paddle's pip guide)
    ),
)
BY_NAME = {fw.name: fw for fw in REGISTRY}
NAMES: tuple[str, ...] = tuple(BY_NAME)  # ('torch', 'paddle'): the order of every table and report


class FrameworkMissing(RuntimeError):
    pass


def get(name: str) -> Framework:
    """The registry entry for `name`; ValueError naming the known ones otherwise."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown framework {name!r}; known: {', '.join(NAMES)}") from None


def package(name: str) -> ModuleType:
    """The project's package for framework `name` (lenet_torch or lenet_paddle), imported on first use.

    Raises:
        FrameworkMissing: the framework is not installed; the message says how to install it.
    """
    fw = get(name)
    try:
        return importlib.import_module(fw.package)
    except ImportError as e:
        raise FrameworkMissing(f"{fw.name} is not importable ({e}); install it: {fw.install}") from None


def module(name: str, file: str) -> ModuleType:
    """`file` of framework `name`'s package: module('paddle', 'bridge') is lenet_paddle.bridge."""
    package(name)
    return importlib.import_module(f"{get(name).package}.{file}")


def bridge(name: str) -> ModuleType:
    """lenet_torch.bridge or lenet_paddle.bridge: NumPy in and out of the framework's models."""
    return module(name, "bridge")


def gpu_problem(name: str) -> str | None:
    """None when framework `name` sees a CUDA GPU, else the project's one line saying why not
    (lenet_spec.cli.no_gpu: the same words for every command and framework)."""
    return module(name, "train").gpu_problem()
