"""The arithmetic under lenet_paddle.model's layers where paddle's own call is not the fastest or
not the spec's: each choice measured, the figures beside it.

Mirrors lenet_torch/kernels.py: the same names (conv2d, per_map, max_pool, avg_pool,
adaptive_max_pool, adaptive_avg_pool, log_softmax, BatchNormKernel), so that the two model.py files differ in
framework words only; what each framework needs differs (torch: a faster 2x2 max pooling; paddle:
fast per-map broadcasts, exact BatchNorm statistics, exact float64 average-pooling gradients and
a log_softmax that does not clip).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import paddle
import paddle.nn.functional as F

if TYPE_CHECKING:
    import lenet_spec


def per_map(values: paddle.Tensor, like: paddle.Tensor) -> paddle.Tensor:
    """(C,) values laid out as `like` (N, C, H, W), for elementwise arithmetic. Paddle's CPU
    kernels broadcast a (1, C, 1, 1) operand slowly: adding lenet5's conv biases took 3.6 ms
    of a 27 ms training step at batch 64, expanded first 0.1 ms (measured; docs/BENCHMARKS.md).
    The sums are the same; torch broadcasts as fast and needs no such step. In a static graph
    (export) it stays a broadcast: one ONNX Add, which the exporters' clean-up folds into Conv."""
    values = values.reshape([1, -1, 1, 1])
    return values.expand_as(like) if paddle.in_dynamic_mode() else values


def conv2d(x: paddle.Tensor, weight: paddle.Tensor, bias: paddle.Tensor, stride: int, padding: int, dilation: int = 1) -> paddle.Tensor:
    """F.conv2d, then the bias added per map: F.conv2d's own bias add is the slow broadcast (per_map)."""
    y = F.conv2d(x, weight, None, stride, padding, dilation)
    return y + per_map(bias, y)  # (N, out, H', W')


def max_pool(x: paddle.Tensor, kernel: int, stride: int, padding: int = 0) -> paddle.Tensor:
    """F.max_pool2d (padding with -inf). paddle's max_pool2d: 0.5 ms forward, 1.1 ms gradient a call
    on average over lenet5's two pools at batch 64, one thread; so no counterpart of torch's
    MaxPool2x2 (torch's kernel took 2.3 ms forward for the first pool alone; docs/BENCHMARKS.md)."""
    return F.max_pool2d(x, kernel, stride, padding)


def avg_pool(x: paddle.Tensor, kernel: int, stride: int, padding: int, count_include_pad: bool) -> paddle.Tensor:
    """F.avg_pool2d, zero-padded. paddle's `exclusive` is the opposite of torch's count_include_pad
    (lenet_spec.Pool), and its default True is count_include_pad=False: passed explicitly.

    In float64 its gradient is float32-accurate unless 1 / the divisor is exact in float32 (paddle
    3.3.1, measured against the exact gradient, upstream gradients of order 1: 2x2 windows 0 off,
    3x3 windows 3.9e-9 to 2.5e-8 off, with and without padding; torch 0 in every case). So in
    float64, for windows other than 2x2 (whose divisors, 4, or 1, 2 or 4 real pixels, are powers of
    two), the windows' sums are a depthwise convolution with a kernel of ones (`window_sums`),
    divided by the window's size or its real pixels: the values paddle's own to rounding, the
    gradient exact. (parity.diff recognises that rounding in a user's port as the convention
    paddle_float32_pool_scale, where the window's size is one constant.)"""
    if x.dtype != paddle.float64 or kernel in (1, 2):
        return F.avg_pool2d(x, kernel, stride, padding, exclusive=not count_include_pad)
    sums = window_sums(x, kernel, stride, padding)
    if count_include_pad:
        return sums / float(kernel * kernel)
    real = window_sums(paddle.ones([1, 1, *x.shape[2:]], dtype=x.dtype), kernel, stride, padding)  # (1, 1, H', W'): real pixels in each window
    return sums / real


def window_sums(x: paddle.Tensor, kernel: int, stride: int, padding: int) -> paddle.Tensor:
    """The sum of every kernel x kernel window of each map of `x` (N, C, H, W), zero-padded: a
    depthwise F.conv2d with a kernel of ones, whose float64 gradient is exact."""
    ones = paddle.ones([x.shape[1], 1, kernel, kernel], dtype=x.dtype)
    return F.conv2d(x, ones, None, stride, padding, groups=x.shape[1])


def adaptive_avg_pool(x: paddle.Tensor, spec: lenet_spec.AdaptivePool) -> paddle.Tensor:
    """F.adaptive_avg_pool2d where each output cell's window is the same size (the map's side a
    multiple of the output's) in float32. Elsewhere each cell's window (spec.windows, the rule both
    frameworks use) is summed and divided by its size, as slices: in float64 paddle's own gradient
    is float32-accurate, as avg_pool's (measured: 8 -> 3 cells 9.1e-9 off the exact one; torch
    5.6e-17), and paddle2onnx 2.1.0 writes uneven windows as one fixed AveragePool (8 -> 3 cells:
    the ONNX model 5.9e-2 off the reference, measured; torch's export 3.8e-7)."""
    h, w = x.shape[2:]
    oh, ow = spec.output_size
    if x.dtype != paddle.float64 and h % oh == 0 and w % ow == 0:
        return F.adaptive_avg_pool2d(x, [oh, ow])
    rows, cols = spec.windows(h, oh), spec.windows(w, ow)
    cells = [x[:, :, h0:h1, w0:w1].sum([2, 3]) / float((h1 - h0) * (w1 - w0)) for h0, h1 in rows for w0, w1 in cols]  # each (N, C)
    return paddle.stack(cells, -1).reshape([-1, x.shape[1], oh, ow])


def adaptive_max_pool(x: paddle.Tensor, spec: lenet_spec.AdaptivePool) -> paddle.Tensor:
    """F.adaptive_max_pool2d, but for a static graph (export) with uneven windows: there each cell's
    window (spec.windows) is reduced by its max, as slices, since paddle2onnx 2.1.0 writes uneven
    windows as one fixed MaxPool (8 -> 3 cells: the ONNX model 1.2e-1 off the reference, measured).
    Not while training: a max reduction's gradient goes to every tied maximum (a ReLU's zeros),
    the pooling kernel's to the first, as torch's."""
    h, w = x.shape[2:]
    oh, ow = spec.output_size
    if paddle.in_dynamic_mode() or (h % oh == 0 and w % ow == 0):
        return F.adaptive_max_pool2d(x, [oh, ow])
    rows, cols = spec.windows(h, oh), spec.windows(w, ow)
    cells = [x[:, :, h0:h1, w0:w1].max([2, 3]) for h0, h1 in rows for w0, w1 in cols]  # each (N, C)
    return paddle.stack(cells, -1).reshape([-1, x.shape[1], oh, ow])


def log_softmax(x: paddle.Tensor) -> paddle.Tensor:
    """Log-probabilities over the last axis from primitives: (x - max) - log(sum(exp(x - max))),
    the max detached (the expression does not depend on it). paddle 3.3.1's F.log_softmax clips a
    log-probability at about -64 even in float64 (measured: -1005.5 came back as -64.5, off by
    941); this is bit-identical to the NumPy reference on logits spread over 1000, and
    x - paddle.logsumexp(x, axis=-1, keepdim=True) is exact too but for rounding (1.1e-13 off there)."""
    shifted = x - x.max(axis=-1, keepdim=True).detach()
    return shifted - paddle.log(paddle.exp(shifted).sum(axis=-1, keepdim=True))


def channel_mean(x: paddle.Tensor) -> paddle.Tensor:
    """The mean of each channel of (N, C, H, W), or feature of (N, F), keeping the dimensions: over
    each map first, then over the batch. Paddle's mean over (N, H, W) at once sums in one run
    whose rounding grows with the count: c1's output of lenet5-bn on 256 MNIST images (147,456
    values a channel), batch-normalised in float64, is then 6.0e-12 off the exact value; in two
    stages, 6.2e-15."""
    if x.ndim == 4:
        return x.mean([2, 3], keepdim=True).mean(0, keepdim=True)
    return x.mean(0, keepdim=True)


class BatchNormKernel:
    """The arithmetic of lenet_paddle.model.BatchNorm, on its state (weight, bias, _mean,
    _variance, num_batches_tracked, spec).

    Paddle's kernel (F.batch_norm) differs from the spec and torch in its running statistics
    (measured; tests/test_stateful.py), so the layer keeps them itself:
    - paddle's `momentum` weighs the running average, so the spec's 0.1 is paddle's 0.9 (`batch_weight`);
    - paddle folds the batch's *biased* variance into the running variance, where the spec and
      torch fold the unbiased one (`running_variance`).
    In training the kernel normalises, and hands over the batch's mean and biased variance by
    updating two scratch vectors at momentum 0; the layer folds those into its own.
    In float64 (the proof) the kernel is too coarse: c1's output of lenet5-bn, batch 256,
    normalised, is 2.6e-11 off the exact value on random images and 1.3e-10 on MNIST (torch's
    kernel: 7.7e-14 and 3.6e-12). There the layer normalises with paddle's arithmetic ops, the
    mean taken in two stages (`channel_mean`): 3.6e-15 and 6.2e-15. In float32 the kernel is
    1.8e-6 off, torch's 4.8e-7 (Fashion-MNIST, batch 256), within float32's 1e-5; the
    arithmetic ops would make a training step 6x slower (360 vs 60 ms at batch 256).
    In evaluation the same split: in float32 paddle's kernel on the running statistics; in
    float64 the arithmetic ops, as the kernel is 3e-14 off there (torch's: 4e-16)."""

    def batch_weight(self) -> float:
        """The batch's weight in the running averages: the spec's momentum (paddle's own
        `momentum` argument would be 1 - this)."""
        return self.spec.momentum

    def running_variance(self, biased: paddle.Tensor, count: int) -> paddle.Tensor:
        """The variance folded into the running one, from the batch's biased variance over `count`
        values a channel: the unbiased variance, as torch's."""
        return biased * (count / (count - 1))

    def normalise_batch(self, x: paddle.Tensor) -> paddle.Tensor:
        """Training mode: normalised on the batch's statistics, the running ones moved; evaluation: on the running ones."""
        if not self.training and x.dtype == paddle.float64:
            return self.normalise(x, self._mean, self._variance)
        if not self.training:
            return F.batch_norm(x, self._mean, self._variance, self.weight, self.bias, training=False, epsilon=self.spec.eps)
        if x.dtype == paddle.float64:
            y, mean, biased = self.normalise_exactly(x)
        else:
            mean = paddle.zeros([x.shape[1]], dtype=x.dtype)  # scratch: at momentum 0 the kernel writes the batch's statistics here
            biased = paddle.zeros([x.shape[1]], dtype=x.dtype)
            y = F.batch_norm(x, mean, biased, self.weight, self.bias, training=True, momentum=0.0, epsilon=self.spec.eps)
        with paddle.no_grad():
            m = self.batch_weight()
            self._mean.set_value((1 - m) * self._mean + m * mean.detach())
            self._variance.set_value((1 - m) * self._variance + m * self.running_variance(biased.detach(), x.size // x.shape[1]))
            self.num_batches_tracked.set_value(self.num_batches_tracked + 1)
        return y

    def normalise_exactly(self, x: paddle.Tensor) -> tuple[paddle.Tensor, paddle.Tensor, paddle.Tensor]:
        """Training-mode batch normalisation by paddle's arithmetic ops, two-pass.

        Returns:
            (output, the batch's mean (C,), its biased variance (C,)).
        """
        mean = channel_mean(x)  # (1, C, 1, 1) or (1, C)
        centred = x - mean
        biased = channel_mean(centred * centred)
        return self.normalise(x, mean.flatten(), biased.flatten()), mean.flatten(), biased.flatten()

    def normalise(self, x: paddle.Tensor, mean: paddle.Tensor, variance: paddle.Tensor) -> paddle.Tensor:
        """(x - mean) / sqrt(variance + eps) * weight + bias by paddle's arithmetic ops, the (C,)
        statistics applied to each channel or feature."""
        shape = [1, -1, 1, 1] if x.ndim == 4 else [1, -1]
        y = (x - mean.reshape(shape)) / paddle.sqrt(variance.reshape(shape) + self.spec.eps)
        if x.ndim == 4:
            return y * per_map(self.weight, y) + per_map(self.bias, y)
        return y * self.weight + self.bias
