"""What `python -m parity.check --env` asks paddle (lenet_spec.env): its CUDA build and the GPUs it sees.

Run by the environment probe (lenet_spec/_probe.py) in an interpreter of its own, loaded from
this file's path with paddle already imported: the standard library only, nothing of the project.
"""


def info(paddle) -> dict:
    """The CUDA version paddle was built for (None: a CPU build), its cuDNN, and the GPUs it sees."""
    cuda = paddle.version.cuda() if paddle.is_compiled_with_cuda() else None
    count = paddle.device.cuda.device_count() if cuda else 0
    return {"cuda": cuda, "cudnn": paddle.version.cudnn() if cuda else None, "gpus": [paddle.device.cuda.get_device_name(i) for i in range(count)]}
