"""Speed benchmarks: `python -m benchmarks` (see benchmarks/run.py)."""

import lenet_spec  # noqa: E402, F401  (a Ctrl-C while the command starts ends in one line: lenet_spec.cli.interrupts_quietly)
