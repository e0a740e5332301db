"""paddle's downloader (the one paddle.vision.datasets use). Mirrors lenet_torch/data.py."""

from __future__ import annotations

import logging
from pathlib import Path

from lenet_spec.data import Downloader


def downloader() -> Downloader | None:
    """(url, folder) -> path with paddle.utils.download.get_path_from_url, or None.

    It retries three times and raises on failure; lenet_spec.data checks the content md5.
    """
    try:
        from paddle.utils import download
    except Exception:
        return None

    def fetch(url: str, folder: Path) -> Path:
        level = download.logger.level
        download.logger.setLevel(logging.WARNING)  # it logs every try at INFO; failures reach us as one exception
        try:
            return Path(download.get_path_from_url(url, str(folder), md5sum=None, check_exist=False, decompress=False))
        finally:
            download.logger.setLevel(level)

    return fetch
