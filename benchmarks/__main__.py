from lenet_spec.cli import run

from .run import main

run(main, "benchmarks")
