"""The arithmetic under lenet_paddle.model's layers where paddle's own call is not the fastest or
not the spec's: each choice measured, the figures beside it.

Mirrors lenet_torch/kernels.py: the same names (conv2d, per_map, max_pool, BatchNormKernel), so
that the two model.py files differ in framework words only; what each framework needs differs
(torch: a faster 2x2 max pooling; paddle: fast per-map broadcasts and exact BatchNorm statistics).
"""

from __future__ import annotations

import paddle
import paddle.nn.functional as F


def per_map(values: paddle.Tensor, like: paddle.Tensor) -> paddle.Tensor:
    """(C,) values laid out as `like` (N, C, H, W), for elementwise arithmetic. Paddle's CPU
    kernels broadcast a (1, C, 1, 1) operand slowly: adding lenet5's conv biases took 3.6 ms
    of a 27 ms training step at batch 64, expanded first 0.1 ms (measured; docs/BENCHMARKS.md).
    The sums are the same; torch broadcasts as fast and needs no such step. In a static graph
    (export) it stays a broadcast: one ONNX Add, which the exporters' clean-up folds into Conv."""
    values = values.reshape([1, -1, 1, 1])
    return values.expand_as(like) if paddle.in_dynamic_mode() else values


def conv2d(x: paddle.Tensor, weight: paddle.Tensor, bias: paddle.Tensor, stride: int, padding: int) -> paddle.Tensor:
    """F.conv2d, then the bias added per map: F.conv2d's own bias add is the slow broadcast (per_map)."""
    y = F.conv2d(x, weight, None, stride, padding)
    return y + per_map(bias, y)  # (N, out, H', W')


def max_pool(x: paddle.Tensor, kernel: int, stride: int) -> paddle.Tensor:
    """F.max_pool2d. paddle's max_pool2d: 0.5 ms forward, 1.1 ms gradient a call on average over
    lenet5's two pools at batch 64, one thread; so no counterpart of torch's MaxPool2x2 (torch's
    kernel took 2.3 ms forward for the first pool alone; docs/BENCHMARKS.md)."""
    return F.max_pool2d(x, kernel, stride)


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
