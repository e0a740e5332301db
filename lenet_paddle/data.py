"""paddle's downloader (the one paddle.vision.datasets use). Mirrors lenet_torch/data.py."""

from __future__ import annotations

import logging
from pathlib import Path

from lenet_spec.data import Downloader, http_downloader


def downloader() -> Downloader:
    """(url, folder) -> path with paddle.utils.download.get_path_from_url, or with
    lenet_spec.data.http_downloader (urllib) should that not import. Its `label` says which.

    It retries three times and raises on failure; lenet_spec.data checks the md5.
    """
    try:
        from paddle.utils import download
    except Exception as e:
        fallback = http_downloader()
        fallback.label = f"{fallback.label}; paddle.utils.download is not importable: {type(e).__name__}"
        return fallback

    def fetch(url: str, folder: Path) -> Path:
        level = download.logger.level
        download.logger.setLevel(logging.WARNING)  # it logs every try at INFO; failures reach us as one exception
        try:
            return Path(download.get_path_from_url(url, str(folder), md5sum=None, check_exist=False, decompress=False))
        finally:
            download.logger.setLevel(level)

    fetch.label = "paddle's get_path_from_url"
    return fetch
