"""lenet_train: what training does the same way in every framework, written once.

The epoch loop, batch order, metrics, logging, checkpoint policy, plots and command-line flags.
A framework contributes a Backend (lenet_torch.train.Backend, lenet_paddle.train.Backend) that
holds the model, its optimizer and the training set, and takes one step at a time.
No framework is imported here.
"""

import lenet_spec  # noqa: E402, F401  (a Ctrl-C while the command starts ends in one line: lenet_spec.cli.interrupts_quietly)
