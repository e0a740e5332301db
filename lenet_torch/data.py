"""torchvision's downloader, when torchvision can be imported. Mirrors lenet_paddle/data.py."""

from __future__ import annotations

from pathlib import Path

from lenet_spec.data import Downloader


def downloader() -> Downloader | None:
    """(url, folder) -> path with torchvision.datasets.utils.download_url, or None.

    torchvision is optional: a CUDA build of it cannot even be imported beside a CPU torch, so
    any failure to import it means "no downloader".
    """
    try:
        from torchvision.datasets.utils import download_url
    except Exception:
        return None

    def fetch(url: str, folder: Path) -> Path:
        download_url(url, str(folder))
        return Path(folder) / url.rsplit("/", 1)[-1]

    return fetch
