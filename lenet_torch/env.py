"""What `python -m parity.check --env` asks torch (lenet_spec.env): its CUDA build and the GPUs it sees.

Run by the environment probe (lenet_spec/_probe.py) in an interpreter of its own, loaded from
this file's path with torch already imported: the standard library only, nothing of the project.
"""


def info(torch) -> dict:
    """The CUDA version torch was built for (None: a CPU build), its cuDNN, and the GPUs it sees."""
    cuda = torch.version.cuda
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda and torch.cuda.is_available() else []
    return {"cuda": cuda, "cudnn": torch.backends.cudnn.version() if cuda else None, "gpus": gpus}
