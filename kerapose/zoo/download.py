"""Checked, resumable downloads into the kerapose home.

A download goes to `<name>.part` next to its destination and is renamed
only once its sha256 matches, so the cache never holds a half-written or
unverified file: every failure seen here removes the `.part`. A `.part`
left by a killed process is resumed with an HTTP Range request.
"""

import hashlib
import http.client
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

_CHUNK = 1 << 16
TIMEOUT_S = 30
# Bodies that are an error page, not a checkpoint (lower-cased, stripped).
_HTML_STARTS = (b"<!doctype", b"<html")
_BROKEN_TRANSFER = (
    http.client.IncompleteRead,
    ConnectionError,
    TimeoutError,
)


class DownloadError(OSError):
    """A download failed; nothing of it was kept."""


class OfflineError(DownloadError, ConnectionError):
    """The server could not be reached (no network, refused, timed out)."""


class ChecksumError(DownloadError, ValueError):
    """A downloaded file's sha256 is not the expected one."""


class _Interrupted(Exception):
    """The transfer broke off after it started; it may be resumed."""


def kerapose_home() -> Path:
    """`$KERAPOSE_HOME`, or `~/.kerapose`."""
    return Path(os.environ.get("KERAPOSE_HOME", "~/.kerapose")).expanduser()


def sha256_of(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def ensure_writable(folder) -> Path:
    """Creates `folder` and checks that a file can be written in it.

    Raises:
        PermissionError: naming the folder and how to pick another home.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".kerapose-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise PermissionError(
            f"Cannot write to {folder} ({e.strerror or e}). kerapose keeps "
            "downloaded and converted weights under $KERAPOSE_HOME (now "
            f"{kerapose_home()}). Fix the folder's permissions or point it "
            "at a writable folder, e.g. KERAPOSE_HOME=/tmp/kerapose."
        ) from e
    return folder


def _hash_matches(actual, sha256, sha256_prefix):
    if sha256:
        return actual == sha256.lower()
    return actual.startswith(sha256_prefix.lower())


def download(
    url: str,
    sha256: str | None = None,
    subdir: str = "weights",
    *,
    sha256_prefix: str | None = None,
    progress: bool = True,
    retries: int = 1,
    timeout: float = TIMEOUT_S,
) -> Path:
    """Downloads `url` into `$KERAPOSE_HOME/<subdir>/` and checks its hash.

    A file already there with the right hash is reused. The transfer goes
    to `<name>.part`: a `.part` left by a killed process is resumed with an
    HTTP Range request (restarted when the server answers with the whole
    file), a transfer that breaks off is resumed `retries` times, and any
    failure removes the `.part`. An HTML page (a login or error page served
    instead of the file) is refused.

    Args:
        url: str. Any scheme urllib reads (`https://`, `file://`).
        sha256: str. Expected hex digest.
        subdir: str. Folder under the kerapose home. Defaults to
            `"weights"`.
        sha256_prefix: str. The leading hex digits of the digest, checked
            when `sha256` is not known (e.g. the 8 digits in an MMPose file
            name).
        progress: bool. Print bytes done / total and the rate on stderr.
            Defaults to `True`.
        retries: int. Resumptions after a broken transfer. Defaults to 1.
        timeout: float. Seconds to wait for the server. Defaults to 30.

    Returns:
        Path of the verified file.

    Raises:
        OfflineError: the server could not be reached.
        ChecksumError: the file's sha256 is not the expected one.
        DownloadError: an HTTP error, an HTML page, or a transfer that
            kept breaking off.
        PermissionError: the destination folder cannot be written.
    """
    if not (sha256 or sha256_prefix):
        raise ValueError(
            f"Refusing to download {url} without a sha256 to check it "
            "against; pass sha256=..."
        )
    name = Path(urllib.parse.urlparse(url).path).name or "download"
    folder = kerapose_home() / subdir
    dest = folder / name
    if dest.is_file() and _hash_matches(sha256_of(dest), sha256, sha256_prefix):
        return dest
    ensure_writable(folder)
    part = folder / f"{name}.part"
    fetch = _Fetch(url, part, progress, timeout)
    try:
        resumed = part.exists() and part.stat().st_size > 0
        fetch.with_retries(retries)
        actual = sha256_of(part)
        if resumed and not _hash_matches(actual, sha256, sha256_prefix):
            # The old .part may be of another version of the file.
            part.unlink()
            fetch.with_retries(retries)
            actual = sha256_of(part)
        if not _hash_matches(actual, sha256, sha256_prefix):
            expected = sha256 or f"{sha256_prefix}... (prefix)"
            raise ChecksumError(
                f"sha256 mismatch for {url}: expected {expected}, got "
                f"{actual}. The download is corrupt or the file changed "
                "on the server; nothing was saved."
            )
        os.replace(part, dest)
    finally:
        part.unlink(missing_ok=True)
    return dest


class _Fetch:
    """One file's transfer into its `.part`, resumable."""

    def __init__(self, url, part, progress, timeout):
        self.url = url
        self.part = part
        self.progress = progress
        self.timeout = timeout

    def with_retries(self, retries):
        for attempt in range(retries + 1):
            try:
                return self.once()
            except _Interrupted as e:
                if attempt == retries:
                    raise DownloadError(
                        f"The download of {self.url} broke off "
                        f"{retries + 1} times ({e}); nothing was kept. "
                        "Check the connection and try again."
                    ) from e
                print(f"Download broke off ({e}); resuming.", file=sys.stderr)

    def _open(self, have):
        request = urllib.request.Request(
            self.url, headers={"User-Agent": "kerapose"}
        )
        if have:
            request.add_header("Range", f"bytes={have}-")
        try:
            return urllib.request.urlopen(request, timeout=self.timeout)
        except urllib.error.HTTPError as e:
            if e.code == 416 and have:  # the .part is no prefix: restart
                self.part.unlink()
                return self._open(0)
            raise DownloadError(
                f"{self.url} answered HTTP {e.code} ({e.reason}); nothing "
                "was downloaded. Check the URL."
            ) from e
        except urllib.error.URLError as e:
            raise OfflineError(f"Could not reach {self.url}: {e.reason}") from e
        except (ConnectionError, TimeoutError, http.client.HTTPException) as e:
            raise OfflineError(f"Could not reach {self.url}: {e!r}") from e

    def once(self):
        have = self.part.stat().st_size if self.part.exists() else 0
        with self._open(have) as response:
            if have and not _resumes_at(response, have):
                have = 0  # the server sent the whole file: start again
            kind = response.headers.get("Content-Type") or ""
            if kind.lower().startswith("text/html"):
                raise self._html_error(f"Content-Type {kind}")
            length = response.headers.get("Content-Length")
            total = have + int(length) if length else None
            meter = _Progress(self.part.name[:-5], have, total, self.progress)
            done = self._copy(response, have, meter)
        meter.finish()
        if total is not None and done < total:
            raise _Interrupted(f"got {done} of {total} bytes")

    def _copy(self, response, have, meter):
        done = have
        with open(self.part, "ab" if have else "wb") as out:
            while True:
                try:
                    chunk = response.read(_CHUNK)
                except _BROKEN_TRANSFER as e:
                    meter.finish()
                    raise _Interrupted(repr(e)) from e
                if not chunk:
                    return done
                if done == 0 and chunk.lstrip()[:9].lower().startswith(
                    _HTML_STARTS
                ):
                    raise self._html_error("the body is an HTML page")
                out.write(chunk)
                done += len(chunk)
                meter.update(done)

    def _html_error(self, why):
        return DownloadError(
            f"{self.url} served a web page, not the file ({why}): the URL "
            "is wrong, moved, or needs a login. Nothing was kept."
        )


def _resumes_at(response, have):
    """The response is the rest of the file from byte `have` on."""
    if getattr(response, "status", None) != 206:
        return False
    # "bytes <first>-<last>/<total>"
    span = response.headers.get("Content-Range", "")
    return span.startswith(f"bytes {have}-")


class _Progress:
    """`name: done/total MB (pct%), rate MB/s` on one stderr line."""

    def __init__(self, name, start, total, enabled):
        self.name = name
        self.start = self.done = start
        self.total = total
        self.enabled = enabled
        self.began = self.last = time.monotonic()
        self.finished = False
        # A log file gets a line every few seconds, a terminal a live line.
        self.every = 0.2 if sys.stderr.isatty() else 5.0

    def update(self, done):
        self.done = done
        if time.monotonic() - self.last >= self.every:
            self._show()

    def _show(self):
        if not self.enabled:
            return
        now = self.last = time.monotonic()
        rate = (self.done - self.start) / max(now - self.began, 1e-6) / 1e6
        total = f"{self.total / 1e6:.1f}" if self.total else "?"
        pct = f" ({100 * self.done // self.total}%)" if self.total else ""
        sys.stderr.write(
            f"\r{self.name}: {self.done / 1e6:.1f}/{total} MB{pct}, "
            f"{rate:.1f} MB/s"
        )
        sys.stderr.flush()

    def finish(self):
        if not self.finished:
            self.finished = True
            self._show()
            if self.enabled:
                sys.stderr.write("\n")
