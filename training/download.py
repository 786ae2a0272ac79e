"""Fetching a dataset for users with internet access: progress bar, MD5 check, atomic write."""

from __future__ import annotations

import hashlib
import os
import urllib.request
from pathlib import Path

from tqdm import tqdm


def download(url: str, dest: str | Path, md5: str | None = None, timeout: float = 60.0) -> Path:
    """Download `url` to `dest` unless a file with the right checksum is already there."""
    dest = Path(dest)
    if dest.exists() and (md5 is None or file_md5(dest) == md5):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    digest = hashlib.md5()
    with urllib.request.urlopen(url, timeout=timeout) as resp, open(part, "wb") as out:
        total = int(resp.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name) as bar:
            while chunk := resp.read(1 << 20):
                out.write(chunk)
                digest.update(chunk)
                bar.update(len(chunk))
    if md5 is not None and digest.hexdigest() != md5:
        part.unlink()
        raise ValueError(f"{url}: MD5 {digest.hexdigest()} does not match the published {md5}")
    os.replace(part, dest)
    return dest


def file_md5(path: str | Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
