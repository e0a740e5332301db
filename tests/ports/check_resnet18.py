"""Ad-hoc check of the ResNet-18 pair (resnet18_torch.py, resnet18_paddle.py); not a test.

`python check_resnet18.py parity`: copies the torch weights into paddle, both float64, eval mode,
and prints max|a-b|/max|a| of the logits for a 2x3x224x224 input.
`python check_resnet18.py measure`: one forward+backward (mean cross-entropy, random labels) per
framework and dtype at batch 8, each in a fresh subprocess: seconds and peak RSS growth (VmHWM).
"""

import json
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:  # "5" resets VmHWM to the current RSS (Linux >= 4.0)
        f.write("5")


def _status_kb(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def torch_model(dtype: str):
    import torch

    from resnet18_torch import ResNet18

    torch.manual_seed(0)
    return ResNet18().to(getattr(torch, dtype))


def paddle_model(dtype: str):
    import paddle

    from resnet18_paddle import ResNet18

    paddle.set_default_dtype(dtype)
    return ResNet18()


def parity() -> None:
    import paddle
    import torch

    tm = torch_model("float64").eval()
    g = torch.Generator().manual_seed(1)
    for m in tm.modules():  # non-trivial BN statistics and affine, so that the name mapping is really exercised
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g, dtype=torch.float64) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g, dtype=torch.float64) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g, dtype=torch.float64) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g, dtype=torch.float64) * 0.1)
    pm = paddle_model("float64")
    pm.eval()
    rename = {"running_mean": "_mean", "running_var": "_variance"}
    state = {}
    for name, value in tm.state_dict().items():
        if name.endswith("num_batches_tracked"):
            continue
        head, _, leaf = name.rpartition(".")
        array = value.detach().numpy()
        if name == "fc.weight":
            array = array.T
        state[f"{head}.{rename.get(leaf, leaf)}"] = array
    pstate = pm.state_dict()
    assert set(state) == set(pstate), set(state) ^ set(pstate)
    for name, array in state.items():
        assert tuple(pstate[name].shape) == array.shape, name
    pm.set_state_dict({k: paddle.to_tensor(v) for k, v in state.items()})
    n_params = sum(p.numel() for p in tm.parameters())
    x = np.random.default_rng(0).standard_normal((2, 3, 224, 224))
    with torch.no_grad():
        a = tm(torch.from_numpy(x)).numpy()
    with paddle.no_grad():
        b = pm(paddle.to_tensor(x)).numpy()
    print(f"params {n_params}  logits {a.shape} {a.dtype}/{b.dtype}  max|a-b|/max|a| = {np.abs(a - b).max() / np.abs(a).max():.3e}")


def one(framework: str, dtype: str) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 3, 224, 224)).astype(dtype)
    y = rng.integers(0, 1000, size=8)
    model = torch_model(dtype) if framework == "torch" else paddle_model(dtype)
    if framework == "torch":
        import torch

        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        model.train()
        _reset_peak()
        rss0 = _status_kb("VmRSS")
        t0 = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(xt), yt)
        loss.backward()
        dt = time.perf_counter() - t0
    else:
        import paddle

        xt, yt = paddle.to_tensor(x), paddle.to_tensor(y)
        model.train()
        _reset_peak()
        rss0 = _status_kb("VmRSS")
        t0 = time.perf_counter()
        loss = paddle.nn.functional.cross_entropy(model(xt), yt)
        loss.backward()
        dt = time.perf_counter() - t0
    hwm1 = _status_kb("VmHWM")
    print(
        json.dumps(
            {
                "framework": framework,
                "dtype": dtype,
                "seconds": round(dt, 3),
                "rss_before_mb": round(rss0 / 1024),
                "peak_growth_mb": round((hwm1 - rss0) / 1024),
                "peak_mb": round(hwm1 / 1024),
            }
        )
    )


def measure() -> None:
    for dtype in ("float32", "float64"):
        for framework in ("torch", "paddle"):
            out = subprocess.run([sys.executable, __file__, "one", framework, dtype], capture_output=True, text=True, check=True)
            print(out.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    {"parity": parity, "measure": measure, "one": lambda: one(sys.argv[2], sys.argv[3])}[sys.argv[1]]()
