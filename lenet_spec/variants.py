"""The five LeNets of the project, each described once."""

from __future__ import annotations

import os

from .layers import AdaptivePool, BatchNorm, Conv, Dense, Dropout, Flatten, Input, Pool, RBF, Subsample, Variant

MNIST_CLASSES = tuple(str(d) for d in range(10))
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
DATASET_CLASSES = {"mnist": MNIST_CLASSES, "fashion-mnist": FASHION_MNIST_CLASSES, "cifar10": CIFAR10_CLASSES}

# Table I of the 1998 paper: the S2 maps each C3 map reads.
C3_TABLE = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (4, 5, 0), (5, 0, 1),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (3, 4, 5, 0), (4, 5, 0, 1), (5, 0, 1, 2),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)  # fmt: skip

LENET5 = Variant(
    name="lenet5",
    title="modern LeNet-5: ReLU, max pooling, 400-120-84-10",
    dataset="mnist",
    input=Input.from_mean_std(1, 28, 28, mean=0.1307, std=0.3081),  # MNIST mean/std, as pytorch/examples
    layers=(
        Conv("c1", 1, 6, 5, padding=2, activation="relu"),
        Pool("s2", "max", 2, 2),
        Conv("c3", 6, 16, 5, activation="relu"),
        Pool("s4", "max", 2, 2),
        Flatten(),
        Dense("f5", 400, 120, activation="relu"),
        Dense("f6", 120, 84, activation="relu"),
        Dense("output", 84, 10),
    ),
    init="fan-in-uniform",
    classes=MNIST_CLASSES,
)

LENET5_1998 = Variant(
    name="lenet5-1998",
    title="LeNet-5 as published in 1998: scaled tanh, trainable subsampling, C3 table, RBF output",
    dataset="mnist",
    # 28x28 padded to 32x32 with background; background -0.1, ink 1.175 (section II.B).
    input=Input(1, 28, 28, pad=2, scale=1.275, offset=-0.1),
    layers=(
        Conv("c1", 1, 6, 5, activation="scaled_tanh"),
        Subsample("s2", 6),
        Conv("c3", 6, 16, 5, activation="scaled_tanh", table=C3_TABLE),
        Subsample("s4", 16),
        Conv("c5", 16, 120, 5, activation="scaled_tanh"),
        Flatten(),
        Dense("f6", 120, 84, activation="scaled_tanh"),
        RBF("output", 84, 10),
    ),
    init="lecun-1998",
    classes=MNIST_CLASSES,
)

D2L = Variant(
    name="d2l",
    title="Dive into Deep Learning's LeNet: sigmoid, average pooling",
    dataset="fashion-mnist",
    input=Input(1, 28, 28),  # d2l feeds ToTensor() output unnormalised
    layers=(
        Conv("c1", 1, 6, 5, padding=2, activation="sigmoid"),
        Pool("s2", "avg", 2, 2),
        Conv("c3", 6, 16, 5, activation="sigmoid"),
        Pool("s4", "avg", 2, 2),
        Flatten(),
        Dense("f5", 400, 120, activation="sigmoid"),
        Dense("f6", 120, 84, activation="sigmoid"),
        Dense("output", 84, 10),
    ),
    init="xavier-uniform",
    classes=FASHION_MNIST_CLASSES,
)

LENET_CAFFE = Variant(
    name="lenet-caffe",
    title="the classic Caffe LeNet: 20-50-500, ReLU, max pooling",
    dataset="mnist",
    input=Input(1, 28, 28),
    layers=(
        Conv("conv1", 1, 20, 5, activation="relu"),
        Pool("pool1", "max", 2, 2),
        Conv("conv2", 20, 50, 5, activation="relu"),
        AdaptivePool("pool2", (4, 4)),
        Flatten(),
        Dense("ip1", 800, 500, activation="relu"),
        Dense("ip2", 500, 10),
    ),
    init="fan-in-uniform",
    classes=MNIST_CLASSES,
)

CIFAR_NET = Variant(
    name="cifar-net",
    title="the PyTorch tutorial's CIFAR-10 net: 3x32x32 colour input",
    dataset="cifar10",
    input=Input.from_mean_std(3, 32, 32, mean=0.5, std=0.5),  # the tutorial's Normalize((0.5,)*3, (0.5,)*3)
    layers=(
        Conv("conv1", 3, 6, 5, activation="relu"),
        Pool("pool1", "max", 2, 2),
        Conv("conv2", 6, 16, 5, activation="relu"),
        Pool("pool2", "max", 2, 2),
        Flatten(),
        Dense("fc1", 400, 120, activation="relu"),
        Dense("fc2", 120, 84, activation="relu"),
        Dense("fc3", 84, 10),
    ),
    init="fan-in-uniform",
    classes=CIFAR10_CLASSES,
)

# Dive into Deep Learning's "LeNet with batch normalization" (chapter "Batch Normalization",
# PyTorch version; layer list as there): BatchNorm after each convolution and hidden dense layer,
# before the sigmoid; no padding, so 16x4x4 = 256 features reach the first dense layer. (d2l's
# Paddle version of the chapter has max pooling here, and gives BatchNorm2D momentum=0.1, which in
# paddle weighs the running average, not the batch: docs/PORTING.md, "Stateful layers".)
LENET5_BN = Variant(
    name="lenet5-bn",
    title="Dive into Deep Learning's LeNet with batch normalization: BatchNorm before each sigmoid",
    dataset="fashion-mnist",
    input=Input(1, 28, 28),
    layers=(
        Conv("c1", 1, 6, 5),
        BatchNorm("b1", 6, activation="sigmoid"),
        Pool("s2", "avg", 2, 2),
        Conv("c3", 6, 16, 5),
        BatchNorm("b3", 16, activation="sigmoid"),
        Pool("s4", "avg", 2, 2),
        Flatten(),
        Dense("f5", 256, 120),
        BatchNorm("b5", 120, activation="sigmoid"),
        Dense("f6", 120, 84),
        BatchNorm("b6", 84, activation="sigmoid"),
        Dense("output", 84, 10),
    ),
    init="xavier-uniform",  # d2l's train_ch6 applies xavier_uniform_ to conv and linear weights
    classes=FASHION_MNIST_CLASSES,
)

# The Caffe LeNet with dropout (p = 0.5) between its two dense layers, where the MNIST examples
# of TensorFlow ("Deep MNIST for experts") and Keras put it in the same conv-pool-conv-pool-dense
# shape: the dropout LeNet people port. A variant of its own, so lenet-caffe's figures stand.
LENET_CAFFE_DROPOUT = Variant(
    name="lenet-caffe-dropout",
    title="the Caffe LeNet with dropout 0.5 before its last layer",
    dataset="mnist",
    input=Input(1, 28, 28),
    layers=(*LENET_CAFFE.layers[:-1], Dropout("drop", 0.5), LENET_CAFFE.layers[-1]),
    init="fan-in-uniform",
    classes=MNIST_CLASSES,
)

VARIANTS: dict[str, Variant] = {v.name: v for v in (LENET5, LENET5_1998, D2L, LENET_CAFFE, CIFAR_NET, LENET5_BN, LENET_CAFFE_DROPOUT)}


def get_variant(name: str | Variant) -> Variant:
    """The variant called `name` (a Variant is returned as it is, so code that takes a name takes
    a network read from a spec file too); ValueError listing the known names otherwise."""
    if isinstance(name, Variant):
        return name
    try:
        return VARIANTS[name]
    except KeyError:
        raise ValueError(f"unknown variant {name!r}; choose from {', '.join(VARIANTS)}") from None


SPEC_SUFFIX = ".toml"


def resolve(text: str) -> Variant:
    """What every command's --variant names: a built-in variant's name, or the path of a spec file
    (lenet_spec.specfile: a network of one's own, read as data, never executed). A spec file may
    not take a built-in variant's name for another network: a name says which network a
    checkpoint, a recipe or a record is of, so it must say one thing.

    Raises:
        ValueError: one line naming the problem and the fix (a specfile.SpecError for a spec
            file that cannot be read).
    """
    if text in VARIANTS:
        return VARIANTS[text]
    from . import specfile
    from .cli import did_you_mean

    if not text.endswith(SPEC_SUFFIX):
        raise ValueError(
            f"unknown variant {text!r}; choose from {', '.join(VARIANTS)}, or give a spec file (a path ending in {SPEC_SUFFIX}){did_you_mean(text, VARIANTS)}"
        )
    if not os.path.exists(text):
        raise specfile.SpecError(f"{text}: no such spec file; give the path of a {SPEC_SUFFIX} spec file, or a variant: {', '.join(VARIANTS)}")
    variant = specfile.load(text)
    builtin = VARIANTS.get(variant.name)
    if builtin is not None and builtin != variant:
        raise specfile.SpecError(
            f"{text}: names its network {variant.name!r}, a built-in variant's name, but is another network; give it a name of its own (name = ...)"
        )
    return builtin or variant


def is_builtin(variant: str | Variant) -> bool:
    """`variant` is one of VARIANTS (by name, or equal to the built-in of its name)."""
    name = variant.name if isinstance(variant, Variant) else variant
    return name in VARIANTS and (not isinstance(variant, Variant) or VARIANTS[name] == variant)
