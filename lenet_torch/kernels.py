"""The arithmetic under lenet_torch.model's layers where torch's own call is not the fastest or
not the spec's: each choice measured, the figures beside it.

Mirrors lenet_paddle/kernels.py: the same names (conv2d, per_map, max_pool, avg_pool,
adaptive_max_pool, adaptive_avg_pool, log_softmax, BatchNormKernel), so that the two model.py files differ in
framework words only; what each framework needs differs (torch: a faster 2x2 max pooling; paddle:
fast per-map broadcasts, exact BatchNorm statistics, exact float64 average-pooling gradients and
a log_softmax that does not clip).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    import lenet_spec


def per_map(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(C,) values laid out for elementwise arithmetic with `like` (N, C, H, W): a (1, C, 1, 1)
    view. torch broadcasts it as fast as an expanded operand (paddle does not: lenet_paddle.kernels)."""
    return values.reshape([1, -1, 1, 1])


def conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, stride: int, padding: int, dilation: int = 1) -> torch.Tensor:
    """F.conv2d, bias included: torch's own bias add is as fast as any."""
    return F.conv2d(x, weight, bias, stride, padding, dilation)  # (N, out, H', W')


def window_corners(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The four corners of every 2x2 window, as strided views (N, C, H/2, W/2), in max_pool2d's scan order."""
    return x[..., 0::2, 0::2], x[..., 0::2, 1::2], x[..., 1::2, 0::2], x[..., 1::2, 1::2]


def window_max(x: torch.Tensor) -> torch.Tensor:
    """2x2, stride-2 max pooling by elementwise maxima of the corners: max_pool2d's values, bit for bit."""
    a, b, c, d = window_corners(x)
    return torch.maximum(torch.maximum(a, b), torch.maximum(c, d))  # (N, C, H/2, W/2)


class MaxPool2x2(torch.autograd.Function):
    """2x2, stride-2 max pooling as elementwise maxima of strided views, with max_pool2d's
    gradient rule: the first maximum of a window (row by row) takes the whole gradient.
    torch's CPU max_pool2d kernel took 2.3 ms forward for lenet5's first pool at batch 64,
    this 0.3 ms; the values are bit-identical (measured; docs/BENCHMARKS.md)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        y = window_max(x)
        ctx.save_for_backward(x, y)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        x, y = ctx.saved_tensors
        a, b, c, d = window_corners(x)
        first = a == y
        second = (b == y) & ~first
        taken = first | second
        third = (c == y) & ~taken
        fourth = ~(taken | third)
        out = torch.empty_like(x)  # the four views tile x exactly (even H and W)
        for (i, j), won in zip(((0, 0), (0, 1), (1, 0), (1, 1)), (first, second, third, fourth)):
            out[..., i::2, j::2] = grad * won  # a bool factor: 2.4x faster than torch.where here
        return out


def max_pool(x: torch.Tensor, kernel: int, stride: int, padding: int = 0) -> torch.Tensor:
    """F.max_pool2d (padding with -inf), through MaxPool2x2 for the unpadded 2x2/2 windows of every
    variant here (not while exporting: the ONNX graph keeps one MaxPool node). Torch only: paddle's
    own max_pool2d is not slow at these sizes (lenet_paddle.kernels.max_pool)."""
    if kernel == stride == 2 and not padding and x.shape[-1] % 2 == 0 and x.shape[-2] % 2 == 0 and not torch.compiler.is_exporting():
        return MaxPool2x2.apply(x) if x.requires_grad and torch.is_grad_enabled() else window_max(x)
    return F.max_pool2d(x, kernel, stride, padding)


def avg_pool(x: torch.Tensor, kernel: int, stride: int, padding: int, count_include_pad: bool) -> torch.Tensor:
    """F.avg_pool2d, zero-padded; `count_include_pad` is torch's own argument (lenet_spec.Pool). Its
    float64 gradient is exact for every window size (paddle's is not: lenet_paddle.kernels.avg_pool)."""
    return F.avg_pool2d(x, kernel, stride, padding, count_include_pad=count_include_pad)


def adaptive_max_pool(x: torch.Tensor, spec: lenet_spec.AdaptivePool) -> torch.Tensor:
    """F.adaptive_max_pool2d (torch's export writes uneven windows right; paddle2onnx does not: lenet_paddle.kernels.adaptive_max_pool)."""
    return F.adaptive_max_pool2d(x, list(spec.output_size))


def adaptive_avg_pool(x: torch.Tensor, spec: lenet_spec.AdaptivePool) -> torch.Tensor:
    """F.adaptive_avg_pool2d: its float64 gradient is exact (paddle's is not: lenet_paddle.kernels.adaptive_avg_pool)."""
    return F.adaptive_avg_pool2d(x, list(spec.output_size))


def log_softmax(x: torch.Tensor) -> torch.Tensor:
    """F.log_softmax over the last axis: exact in float64 (no clipping; 0 off the NumPy reference
    on logits spread over 1000, measured), unlike paddle's (lenet_paddle.kernels.log_softmax)."""
    return F.log_softmax(x, -1)


class BatchNormKernel:
    """The arithmetic of lenet_torch.model.BatchNorm, on its state (weight, bias, running_mean,
    running_var, num_batches_tracked, spec): torch's own kernel (F.batch_norm, as
    nn.BatchNorm2d/1d). torch's conventions are the spec's: `momentum` is the batch's weight, and
    the running variance takes the batch's unbiased variance (lenet_spec.BatchNorm)."""

    def normalise_batch(self, x: torch.Tensor) -> torch.Tensor:
        """Training mode: normalised on the batch's statistics, the running ones moved; evaluation: on the running ones."""
        if self.training:
            self.num_batches_tracked.add_(1)
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, self.training, self.spec.momentum, self.spec.eps)
