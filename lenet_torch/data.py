"""torchvision's downloader when torchvision can be imported, else the standard library's.
Mirrors lenet_paddle/data.py."""

from __future__ import annotations

from pathlib import Path

from lenet_spec.data import Downloader, http_downloader


def downloader() -> Downloader:
    """(url, folder) -> path with torchvision.datasets.utils.download_url, or with
    lenet_spec.data.http_downloader (urllib) when torchvision cannot be imported: it is optional,
    and a CUDA build of it cannot even be imported beside a CPU torch. Its `label` says which."""
    try:
        from torchvision.datasets.utils import download_url
    except Exception as e:
        fallback = http_downloader()
        fallback.label = f"{fallback.label}; torchvision is not importable: {type(e).__name__}"
        return fallback

    def fetch(url: str, folder: Path) -> Path:
        download_url(url, str(folder))
        return Path(folder) / url.rsplit("/", 1)[-1]

    fetch.label = "torchvision's download_url"
    return fetch
