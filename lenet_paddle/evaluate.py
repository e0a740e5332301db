"""python -m lenet_paddle.evaluate CKPT: test accuracy, per-class accuracy and confusion matrix in paddle,
for a checkpoint of either framework (converted through parity's mapping table)."""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    from lenet_train.cli import evaluate_main

    return evaluate_main("paddle", argv)


if __name__ == "__main__":
    from lenet_spec.cli import run

    run(main, "lenet_paddle.evaluate")
