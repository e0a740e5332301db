"""The known conventions that make a hand port differ, recognised from the figures of the first
difference (never from the code's arguments alone), each with its explanation and fix. Every
rule is tested by a port that makes that mistake (tests/ports/, tests/test_diff.py).

NumPy only: parity.diff hands each recogniser the paired units, the torch layer's input and
output, the paddle layer's output on that same input, and the units' state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lenet_spec.probe import Unit


@dataclass
class Convention:
    name: str  # batchnorm_momentum, batchnorm_biased_variance, batchnorm_epsilon, dropout_mode, avgpool_padding, gelu_approximate, linear_not_transposed
    explanation: str  # what the figures show, in one sentence
    fix: str  # what to change in the port


def _close(a: np.ndarray, b: np.ndarray, rel: float) -> bool:
    scale = max(float(np.abs(a).max(initial=0.0)), float(np.abs(b).max(initial=0.0)), 1e-300)
    return a.shape == b.shape and float(np.abs(a - b).max(initial=0.0)) <= rel * scale


def _tol(dtype: str) -> float:
    return 1e-9 if dtype == "float64" else 1e-4


def _channels(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Per-channel mean and biased variance of a BatchNorm input (N, C, ...), and the count."""
    axes = (0,) + tuple(range(2, x.ndim))
    n = x.size // x.shape[1]
    return x.mean(axis=axes), x.var(axis=axes), n


def _bcast(v: np.ndarray, x: np.ndarray) -> np.ndarray:
    return v.reshape((1, -1) + (1,) * (x.ndim - 2))


def forward(t: Unit, p: Unit, x: np.ndarray, t_out: np.ndarray, p_out: np.ndarray, t_state: dict, p_state: dict, train: bool, dtype: str) -> Convention | None:
    """A layer that disagrees on the same input: which convention, if the figures show one.

    Args:
        x: the torch layer's input; t_out its output; p_out the paddle layer's on `x`.
        t_state, p_state: each unit's parameters and buffers by local name (each side's layout).
    """
    tol = _tol(dtype)
    kind = t.type.lower()
    if t.kind and p.kind:  # dropout: paddle's output a fixed multiple of torch's where torch keeps a unit
        keep = np.abs(t_out) > 0
        if keep.any():
            ratio = np.median(p_out[keep] / t_out[keep])
            if _close(p_out[keep], ratio * t_out[keep], tol) and math.isclose(ratio, 1 - p.p, rel_tol=1e-6):
                return Convention(
                    "dropout_mode",
                    f"paddle's dropout output is {ratio:.4g} = 1 - p times torch's in {'training' if train else 'evaluation'} mode: "
                    f"paddle's layer scales by downscale_in_infer, torch's by upscale_in_train",
                    "give paddle's Dropout mode='upscale_in_train' (its default), which is torch's rule",
                )
    if "batchnorm" in kind and "weight" in t_state and x.ndim >= 2:
        mean, var, _ = _channels(x) if train else (t_state.get("running_mean"), t_state.get("running_var"), 0)
        if mean is not None:
            eps = {}
            for side, out in (("torch", t_out), ("paddle", p_out)):
                w, b = _bcast(t_state["weight"], x), _bcast(t_state["bias"], x)
                with np.errstate(divide="ignore", invalid="ignore"):
                    root = (x - _bcast(mean, x)) * w / (out - b)
                ok = np.isfinite(root) & (np.abs(out - b) > 1e-3 * np.abs(out - b).max(initial=0.0))
                if ok.sum() > 0:
                    eps[side] = float(np.median((root[ok] ** 2 - np.broadcast_to(_bcast(var, x), x.shape)[ok])))
            if len(eps) == 2 and not math.isclose(eps["torch"], eps["paddle"], rel_tol=0.05, abs_tol=1e-9):
                return Convention(
                    "batchnorm_epsilon",
                    f"the outputs fit (x - mean) / sqrt(var + eps) with eps {eps['torch']:.3g} in torch and {eps['paddle']:.3g} in paddle",
                    f"give the same epsilon on both sides: torch's eps={_round(eps['torch'])} is paddle's epsilon={_round(eps['torch'])}",
                )
    if "avgpool" in kind and t_out.ndim >= 3:
        differ = np.abs(t_out - p_out) > tol * max(float(np.abs(t_out).max(initial=0.0)), 1e-300)
        interior = differ[(...,) + (slice(1, -1),) * (t_out.ndim - 2)]
        if differ.any() and not interior.any():
            paddle_larger = float(np.abs(p_out[differ]).mean()) > float(np.abs(t_out[differ]).mean())
            who = "paddle divides by the cells inside the input (exclusive=True), torch by the whole window, padding included (count_include_pad=True)"
            fix = "give paddle's AvgPool exclusive=False (or torch's count_include_pad=False), the same rule on both sides"
            if not paddle_larger:
                who = "torch divides by the cells inside the input (count_include_pad=False), paddle by the whole window (exclusive=False)"
            return Convention("avgpool_padding", f"the outputs differ only at the border, where the window covers padding: {who}", fix)
    if kind == "gelu":
        exact = 0.5 * x * (1 + _erf(x / math.sqrt(2)))
        approx = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
        rule = {
            side: ("exact" if _close(out, exact, tol) else "tanh" if _close(out, approx, tol) else None) for side, out in (("torch", t_out), ("paddle", p_out))
        }
        if None not in rule.values() and rule["torch"] != rule["paddle"]:
            flag = "approximate=True" if rule["torch"] == "tanh" else "approximate=False"
            return Convention(
                "gelu_approximate",
                f"torch's GELU is the {rule['torch']} form, paddle's the {rule['paddle']} form (erf against its tanh approximation)",
                f"give paddle's GELU {flag} (torch's approximate='{'tanh' if rule['torch'] == 'tanh' else 'none'}')",
            )
    if kind == "linear" and "weight" in t_state and "weight" in p_state:
        w_t, w_p = t_state["weight"], p_state["weight"]
        if w_t.shape == w_p.shape and w_t.shape[0] == w_t.shape[1] and _close(w_p, w_t, 1e-12):
            return Convention(
                "linear_not_transposed",
                "paddle's Linear weight equals torch's as stored, not its transpose: paddle keeps (in, out) where torch keeps (out, in)",
                "copy torch's Linear weight transposed (paddle weight = torch weight.T)",
            )
    return None


def state(t: Unit, name: str, x: np.ndarray | None, before: np.ndarray, t_after: np.ndarray, p_after: np.ndarray, dtype: str) -> Convention | None:
    """A BatchNorm's running statistic that differs after the first step: which convention.

    Args:
        name: the torch buffer ("running_mean" or "running_var").
        x: the layer's input in that step (torch's); before: the buffer before the step.
    """
    if x is None or "batchnorm" not in t.type.lower():
        return None
    mean, var, n = _channels(x)
    batch = mean if name == "running_mean" else var * n / max(n - 1, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        kept = {side: (after - batch) / (before - batch) for side, after in (("torch", t_after), ("paddle", p_after))}
    ok = np.isfinite(kept["torch"]) & np.isfinite(kept["paddle"]) & (np.abs(before - batch) > 1e-6 * np.abs(batch).max(initial=1e-300))
    if not ok.any():
        return None
    a_t, a_p = float(np.median(kept["torch"][ok])), float(np.median(kept["paddle"][ok]))
    if name == "running_mean" and not math.isclose(a_t, a_p, rel_tol=1e-6, abs_tol=1e-9):
        return Convention(
            "batchnorm_momentum",
            f"torch keeps {a_t:.4g} of the running mean each step (momentum={_round(1 - a_t)}, the batch's weight); paddle keeps {a_p:.4g} "
            f"(momentum={_round(a_p)}, the running average's weight)",
            f"paddle's momentum is 1 - torch's: give paddle's BatchNorm momentum={_round(a_t)}",
        )
    if name == "running_var":
        biased = a_t * before + (1 - a_t) * var
        if _close(p_after, biased, _tol(dtype)) and not _close(p_after, t_after, _tol(dtype)):
            return Convention(
                "batchnorm_biased_variance",
                f"paddle folds the batch's biased variance (over n = {n} values a channel) into its running variance, torch the "
                f"unbiased one (n / (n - 1) times it)",
                "not a mistake in the port: no argument of paddle's BatchNorm changes it; pass --accept batchnorm_biased_variance to accept "
                "exactly this difference (checked against the formula), or fold the unbiased variance as lenet_paddle/kernels.py does",
            )
    return None


# Conventions that are the framework's rounding, not the port's doing, and are accepted (said in
# the report) when the figures match their formula: no argument of the port changes them.
FRAMEWORK_ROUNDING = {"paddle_float32_pool_scale"}


def backward(t: Unit, t_in_grad: np.ndarray, p_in_grad: np.ndarray, in_shape: tuple, out_shape: tuple | None) -> Convention | None:
    """A unit whose backward turns an agreeing output gradient into a differing input gradient:
    which convention, if the figures show one.

    paddle 3.3.1's average pools scale the gradient by 1/K (K the cells a window averages) in
    float32 also in float64 models (measured on ResNet-18's 7x7 adaptive pool: 2.05e-8 off, which
    is exactly 49 * float32(1/49) - 1); torch's scale is exact.
    """
    if "avgpool" not in t.type.lower() or out_shape is None or len(in_shape) < 3:
        return None
    nonzero = np.abs(t_in_grad) > 0
    if not nonzero.any():
        return None
    c = float(np.median(p_in_grad[nonzero] / t_in_grad[nonzero]))
    scale = float(np.abs(t_in_grad).max())
    # the gradients that reach the pool agree only to rounding (1e-15 of their scale), so the ratio is
    # checked against the tensor's scale, not element by element
    if c == 1.0 or float(np.abs(p_in_grad - c * t_in_grad).max()) > 1e-12 * scale:
        return None
    cells = [int(np.prod(in_shape[2:]) // max(1, int(np.prod(out_shape[2:]))))]
    cells += [k for k in range(2, 1025) if k != cells[0]]
    for k in cells:
        if math.isclose(c, k * float(np.float32(1.0 / k)), rel_tol=1e-13, abs_tol=0):
            return Convention(
                "paddle_float32_pool_scale",
                f"paddle's gradient through the pool is {c:.10g} times torch's: {k} * float32(1/{k}), the 1/{k} of a {k}-cell window held in "
                f"float32, in float64 too",
                "not a mistake in the port: paddle's kernel rounds the pool's scale to float32; accepted (the difference is that rounding, "
                "checked against its formula)",
            )
    return None


def _round(v: float) -> str:
    return f"{float(f'{v:.3g}'):g}"


def _erf(x: np.ndarray) -> np.ndarray:
    return np.vectorize(math.erf, otypes=[np.float64])(x)
