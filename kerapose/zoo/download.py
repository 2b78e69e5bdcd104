"""sha256-checked downloads into the kerapose home."""

import hashlib
import os
import shutil
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path


def kerapose_home() -> Path:
    """`$KERAPOSE_HOME`, or `~/.kerapose`."""
    return Path(os.environ.get("KERAPOSE_HOME", "~/.kerapose")).expanduser()


def sha256_of(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(url: str, sha256: str, subdir: str = "weights") -> Path:
    """Downloads `url` into `$KERAPOSE_HOME/<subdir>/` and checks its hash.

    A file already there with the right hash is reused. A hash mismatch
    removes the download and raises.

    Args:
        url: str. Any scheme urllib reads (`https://`, `file://`).
        sha256: str. Expected hex digest.
        subdir: str. Folder under the kerapose home.

    Returns:
        Path of the verified file.
    """
    if not sha256:
        raise ValueError(
            f"Refusing to download {url} without a sha256 to check it "
            "against; pass sha256=..."
        )
    name = Path(urllib.parse.urlparse(url).path).name or "download"
    dest = kerapose_home() / subdir / name
    if dest.exists() and sha256_of(dest) == sha256:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url) as src:
            shutil.copyfileobj(src, out)
        actual = sha256_of(tmp)
        if actual != sha256:
            raise ValueError(
                f"sha256 mismatch for {url}: expected {sha256}, got {actual}. "
                "The download is corrupt or the file changed; nothing was "
                "saved."
            )
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return dest
