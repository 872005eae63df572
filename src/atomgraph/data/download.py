"""Checksummed file downloads, shared by every dataset reader.

``download(url, path, sha256=..., md5=...)`` fetches ``url`` into ``path`` and verifies it:

* The bytes go to a temporary file next to ``path`` (``<name>.<random>.part``) and are renamed onto
  ``path`` only after every given checksum matched, so a file with the final name is always complete
  and verified.  The digests are computed while streaming; the file is not read twice.
* If ``path`` already exists and every given checksum matches, nothing is downloaded.  An existing
  file that does *not* match is deleted and downloaded again.  An existing file with no checksum
  given is trusted as it is.
* A mismatch raises ``ValueError`` naming the file, the algorithm and the expected and actual
  digests; the bad download is deleted, so no file is left at ``path``.

Only the standard library (``urllib``) is used, so ``file://`` URLs work too (the tests use them).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

__all__ = ["download", "file_digest", "verify_file"]

_CHUNK = 1 << 20  # 1 MiB
_USER_AGENT = "atomgraph (+https://pypi.org/project/atomgraph)"


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file (any ``hashlib`` algorithm name), read in 1 MiB chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _expected(sha256: str | None, md5: str | None) -> dict[str, str]:
    out = {}
    if sha256 is not None:
        out["sha256"] = sha256.strip().lower()
    if md5 is not None:
        out["md5"] = md5.strip().lower()
    return out


def _mismatch(name: str, expected: dict[str, str], actual: dict[str, str]) -> str | None:
    """A message for the first algorithm whose digest differs, or None when all match."""
    for algorithm, want in expected.items():
        got = actual[algorithm]
        if got != want:
            return f"checksum mismatch for {name}: {algorithm} expected {want}, got {got}"
    return None


def verify_file(path: str | os.PathLike, sha256: str | None = None, md5: str | None = None) -> bool:
    """True when every given checksum matches the file at ``path`` (True if none is given)."""
    expected = _expected(sha256, md5)
    actual = {algorithm: file_digest(path, algorithm) for algorithm in expected}
    return _mismatch(str(path), expected, actual) is None


def download(
    url: str,
    path: str | os.PathLike,
    sha256: str | None = None,
    md5: str | None = None,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Download ``url`` to the file ``path`` and verify it; return ``path`` as a ``Path``.

    Args:
        url: any URL ``urllib.request.urlopen`` understands (``https://``, ``file://`` ...).
        path: destination *file* (its parent folders are created).
        sha256, md5: expected hex digests (case-insensitive); each one given is checked.
        progress: show a tqdm bar (bytes) while downloading.
        timeout: socket timeout in seconds.

    Raises:
        ValueError: a checksum does not match (the bad file is deleted).
        urllib.error.URLError / OSError: the download itself failed (the partial file is deleted).
    """
    path = Path(path)
    expected = _expected(sha256, md5)

    if path.exists():
        actual = {algorithm: file_digest(path, algorithm) for algorithm in expected}
        if _mismatch(path.name, expected, actual) is None:
            return path
        path.unlink()  # stale or corrupt copy: fetch a fresh one

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f"{path.name}.", suffix=".part", dir=path.parent)
    tmp = Path(tmp_name)
    hashes = {algorithm: hashlib.new(algorithm) for algorithm in expected}
    try:
        request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
        with (
            os.fdopen(fd, "wb") as out,
            urllib.request.urlopen(request, timeout=timeout) as response,
        ):
            length = response.headers.get("Content-Length") if response.headers else None
            total = int(length) if length and length.isdigit() else None
            with tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=path.name,
                disable=not progress,
            ) as bar:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    for h in hashes.values():
                        h.update(chunk)
                    bar.update(len(chunk))
        actual = {algorithm: h.hexdigest() for algorithm, h in hashes.items()}
        message = _mismatch(path.name, expected, actual)
        if message is not None:
            raise ValueError(f"{message} (downloaded from {url}; the file was deleted)")
        os.replace(tmp, path)  # same folder: an atomic rename
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
