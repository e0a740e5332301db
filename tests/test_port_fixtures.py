"""The seeds' published models as fixtures (tests/port_fixtures/, and seed 004's in tests/ports/): each
imports, builds and maps a batch of its input shape to (N, 10), and each seed's class is the article's
text (whitespace normalised; seed 003's, whose article lost the indentation, compared without it), so
"verbatim" is tested, not claimed.
"""

import importlib.util
import inspect
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import ROOT, SHARED  # noqa: E402

SEEDS = SHARED / "seeds"
FIXTURES = ROOT / "tests" / "port_fixtures"
PORTS = ROOT / "tests" / "ports"
# (file, class, input shape, the seed article, or None for a fixture written from a description)
MODELS = [
    (FIXTURES / "seed000_torch.py", "LeNet", (1, 28, 28), "000_74b2314717a968ef.txt"),
    (FIXTURES / "seed002_torch.py", "Net", (3, 32, 32), "002_90477e34fbb42180.txt"),
    (FIXTURES / "seed003_torch.py", "MyLeNet5", (1, 28, 28), "003_7a04d7db3a8eb725.txt"),
    (FIXTURES / "examples_mnist_torch.py", "Net", (1, 28, 28), None),
    (PORTS / "seed004_torch.py", "LeNet", (1, 32, 32), "004_7a5611f6bf19da5c.txt"),
]


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(f"_fixture_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # inspect.getsource finds a class's file through its module
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("path, name, shape, article", MODELS, ids=[m[0].stem for m in MODELS])
def test_a_fixture_builds_and_runs_a_batch(path, name, shape, article):
    torch.manual_seed(0)
    model = getattr(_load(path), name)()
    x = torch.from_numpy(np.random.default_rng(0).random((4, *shape), dtype=np.float32))
    with torch.no_grad():
        out = model.eval()(x)
    assert tuple(out.shape) == (4, 10)
    assert torch.isfinite(out).all()


def _article_class(lines: list[str], header: str, start: int = 0) -> list[str]:
    """The class whose first line is `header` in an article: to the next line at column 0 (the end of
    its indented block), or, where the article lost the indentation (seed 003), to its first `return x`."""
    first = next(i for i in range(start, len(lines)) if lines[i].rstrip() == header.rstrip())
    indented = next(x for x in lines[first + 1 :] if x.strip())[:1].isspace()
    out = [lines[first]]
    for line in lines[first + 1 :]:
        if indented and line.strip() and not line[:1].isspace():
            break
        out.append(line)
        if not indented and line.strip() == "return x":
            break
    return out


def _normal(lines, strip_indent=False) -> list[str]:
    """Trailing spaces and blank lines gone; with strip_indent, leading spaces too."""
    return [(x.strip() if strip_indent else x.rstrip()) for x in lines if x.strip()]


@pytest.mark.parametrize("path, name, shape, article", [m for m in MODELS if m[3]], ids=[m[0].stem for m in MODELS if m[3]])
def test_a_seed_fixture_is_its_article_text(path, name, shape, article):
    if not (SEEDS / article).is_file():
        pytest.skip(f"the seed articles are not at {SEEDS}")
    lines = (SEEDS / article).read_text(encoding="utf-8").splitlines()
    ours = inspect.getsource(getattr(_load(path), name)).splitlines()
    published = _article_class(lines, ours[0])
    seed003 = article.startswith("003")
    assert _normal(ours, strip_indent=seed003) == _normal(published, strip_indent=seed003)
    if not seed003:  # the indentation is the article's too
        assert _normal(ours) == _normal(published)


def test_seed003s_two_copies_of_its_class_are_the_same():
    article = SEEDS / "003_7a04d7db3a8eb725.txt"
    if not article.is_file():
        pytest.skip(f"the seed articles are not at {SEEDS}")
    lines = article.read_text(encoding="utf-8").splitlines()
    header = "class MyLeNet5(nn.Module): # 定义一个继承自 nn.Module 的类"
    first = _article_class(lines, header)
    second = _article_class(lines, header, lines.index(header) + 1)
    assert lines.index(first[0]) + 1 == 54 and len(first) == 30
    assert second == first


def test_seed003s_fixture_only_reindents_the_article():
    """Each line of the class is the article's line with leading spaces added, nothing else."""
    if not SEEDS.is_dir():
        pytest.skip(f"the seed articles are not at {SEEDS}")
    lines = (SEEDS / "003_7a04d7db3a8eb725.txt").read_text(encoding="utf-8").splitlines()
    ours = (FIXTURES / "seed003_torch.py").read_text(encoding="utf-8").splitlines()
    start = ours.index("class MyLeNet5(nn.Module): # 定义一个继承自 nn.Module 的类")
    assert [x.lstrip(" ") for x in ours[start:]] == lines[53:83]


def test_the_examples_net_has_the_published_layers():
    """Written from the description (its docstring says why): the published parameter names and shapes
    (a checkpoint of the published script loads into it) and log-probabilities out."""
    torch.manual_seed(0)
    model = _load(FIXTURES / "examples_mnist_torch.py").Net()
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes == {
        "conv1.weight": (32, 1, 3, 3),
        "conv1.bias": (32,),
        "conv2.weight": (64, 32, 3, 3),
        "conv2.bias": (64,),
        "fc1.weight": (128, 9216),
        "fc1.bias": (128,),
        "fc2.weight": (10, 128),
        "fc2.bias": (10,),
    }
    assert sum(v.numel() for v in model.parameters()) == 1_199_882
    assert [type(m).__name__ for m in model.children()] == ["Conv2d", "Conv2d", "Dropout", "Dropout", "Linear", "Linear"]
    assert [m.p for m in (model.dropout1, model.dropout2)] == [0.25, 0.5]
    with torch.no_grad():
        out = model.eval()(torch.rand(3, 1, 28, 28))
    assert torch.allclose(out.exp().sum(1), torch.ones(3), atol=1e-5)
