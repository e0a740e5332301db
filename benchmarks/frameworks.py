"""The framework-specific pieces the benchmarks time: inference calls and the tutorial-style
baseline loop (DataLoader over per-sample tensors, batch 16), each importing its framework
where it is needed."""

from __future__ import annotations

import time

import numpy as np


def synchronize(framework: str) -> None:
    if framework == "torch":
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()


def inference_fn(framework: str, variant: str):
    """(images float32 (N, C, H, W) -> logits as NumPy) for a freshly built model in eval mode."""
    if framework == "torch":
        import torch

        import lenet_torch

        model = lenet_torch.build(variant).eval()

        def run(x: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return model(torch.from_numpy(x)).numpy()

        return run
    import paddle

    import lenet_paddle

    model = lenet_paddle.build(variant)
    model.eval()

    def run(x: np.ndarray) -> np.ndarray:
        with paddle.no_grad():
            return model(paddle.to_tensor(x)).numpy()

    return run


def tutorial_loop(framework: str, images: np.ndarray, labels: np.ndarray, steps: int, warmup: int, batch_size: int = 16) -> float:
    """Images/s of the loop the tutorials write: a Dataset converting one uint8 image at a time,
    a shuffling DataLoader at batch 16, lenet5, Adam. Steps after `warmup` are timed."""
    if framework == "torch":
        import torch
        import torch.nn.functional as F

        import lenet_torch

        class Images(torch.utils.data.Dataset):
            def __len__(self):
                return len(labels)

            def __getitem__(self, i):
                return torch.tensor(images[i], dtype=torch.float32).div(255).unsqueeze(0), int(labels[i])

        model = lenet_torch.build("lenet5")
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        loader = torch.utils.data.DataLoader(Images(), batch_size=batch_size, shuffle=True)

        def step(x, y):
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    else:
        import paddle
        import paddle.nn.functional as F

        import lenet_paddle

        class Images(paddle.io.Dataset):
            def __len__(self):
                return len(labels)

            def __getitem__(self, i):
                return (images[i].astype("float32") / 255)[None], np.int64(labels[i])

        model = lenet_paddle.build("lenet5")
        opt = paddle.optimizer.Adam(learning_rate=1e-3, parameters=model.parameters())
        loader = paddle.io.DataLoader(Images(), batch_size=batch_size, shuffle=True)

        def step(x, y):
            loss = F.cross_entropy(model(x), y)
            opt.clear_grad()
            loss.backward()
            opt.step()

    done, start = 0, None
    while done < warmup + steps:
        for x, y in loader:
            if done == warmup:
                start = time.perf_counter()
            step(x, y)
            done += 1
            if done == warmup + steps:
                break
    return steps * batch_size / (time.perf_counter() - start)
