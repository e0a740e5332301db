"""paddle's downloader (the one paddle.vision.datasets use). Mirrors lenet_torch/data.py."""

from __future__ import annotations

from pathlib import Path

from lenet_spec.data import Downloader


def downloader() -> Downloader | None:
    """(url, folder) -> path with paddle.utils.download.get_path_from_url, or None.

    It retries three times and raises on failure; lenet_spec.data checks the content md5.
    """
    try:
        from paddle.utils.download import get_path_from_url
    except Exception:
        return None

    def fetch(url: str, folder: Path) -> Path:
        return Path(get_path_from_url(url, str(folder), md5sum=None, check_exist=False, decompress=False))

    return fetch
