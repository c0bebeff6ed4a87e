"""The official checkpoints by name: download once, verify the SHA-256, cache.

``fetch("converse_dncnn")`` returns the path of ``converse_dncnn.pth`` in the cache folder,
downloading it first if it is not there:

* source: ``{base}/{name}.pth`` with ``base`` = :data:`OFFICIAL_BASE_URL` (the authors'
  repository at a fixed commit), or the value of the environment variable
  ``CONVERSE_JAX_WEIGHTS_URL`` (a mirror; the hashes are still checked);
* cache: ``$CONVERSE_JAX_CACHE`` if set, else ``~/.cache/converse_jax``; the file is
  ``CACHE/NAME.pth`` (pre-filling the cache with the official files works offline);
* integrity: every file is checked against :data:`OFFICIAL_SHA256` -- a download that does not
  match is refused and nothing is cached; a cached file is re-checked on each use.

A download goes to a temporary file in the cache folder (tqdm progress bar on stderr) and is
moved onto ``NAME.pth`` with :func:`os.replace` only after its size and hash match, so an
interrupted or corrupt transfer never leaves a file under the final name. Standard library
``urllib`` only.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from converse_jax.utils.atomic import default_file_mode

__all__ = ["OFFICIAL_BASE_URL", "OFFICIAL_SHA256", "WeightsDownloadError", "cache_dir", "fetch", "weights_url"]

OFFICIAL_BASE_URL = "https://github.com/cszn/ConverseNet/raw/368aa39cebaa075b04926264c7494d969e8ee835/model_zoo"
"""The authors' ``model_zoo`` folder at the commit whose checkpoints this project converts."""

OFFICIAL_SHA256 = {
    "converse_dncnn": "3b86c7f6e41a014448f923bc331232e1f45e2eae350dd7f9e18440803d283e89",
    "converse_srresnet": "ed75a697f1ebb9f9ad6a53b7875bb76098f23b48d87bf6f0b0dd8cde6df81d2f",
    "conversenet": "603cbb29075178410db9ab6166b247d2ddff32f349c59a7e1763c46feca270bd",
    "converse_usrnet": "729529b8bc8cbda152d6b60734b01032b49c20fcb8b6da2fb33141d9c3378d82",
}
"""SHA-256 of each released checkpoint ``NAME.pth``."""

_CHUNK = 1 << 20


class WeightsDownloadError(OSError):
    """A checkpoint could not be downloaded, or what arrived is not the official file.

    An ``OSError``, like the ``urllib.error.URLError`` it often wraps.

    Example:
      >>> isinstance(WeightsDownloadError("weights: could not download ..."), OSError)
      True
    """


def _check_name(name: str) -> str:
    if name not in OFFICIAL_SHA256:
        raise ValueError(f"weights: {name!r} is not an official checkpoint; known: {', '.join(OFFICIAL_SHA256)}")
    return name


def cache_dir() -> Path:
    """The cache folder: ``$CONVERSE_JAX_CACHE``, else ``~/.cache/converse_jax`` (not created here).

    Example:
      >>> import os
      >>> os.environ["CONVERSE_JAX_CACHE"] = "/tmp/weights-cache"
      >>> cache_dir().as_posix()
      '/tmp/weights-cache'
      >>> del os.environ["CONVERSE_JAX_CACHE"]
      >>> cache_dir() == Path.home() / ".cache" / "converse_jax"
      True
    """
    env = os.environ.get("CONVERSE_JAX_CACHE")
    return Path(env).expanduser().absolute() if env else Path.home() / ".cache" / "converse_jax"


def weights_url(name: str) -> str:
    """Download address of official checkpoint ``name`` (``$CONVERSE_JAX_WEIGHTS_URL`` replaces the base).

    Example:
      >>> weights_url("conversenet").endswith("/368aa39cebaa075b04926264c7494d969e8ee835/model_zoo/conversenet.pth")
      True
      >>> os.environ["CONVERSE_JAX_WEIGHTS_URL"] = "http://mirror.example/weights/"
      >>> weights_url("conversenet")
      'http://mirror.example/weights/conversenet.pth'
      >>> del os.environ["CONVERSE_JAX_WEIGHTS_URL"]
    """
    base = os.environ.get("CONVERSE_JAX_WEIGHTS_URL") or OFFICIAL_BASE_URL
    return f"{base.rstrip('/')}/{_check_name(name)}.pth"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(url: str, out, progress: bool, timeout: float) -> None:
    """Stream ``url`` into the open binary file ``out``; a short body is an error."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            total = response.headers.get("Content-Length")
            total = int(total) if total is not None else None
            received = 0
            with tqdm(total=total, unit="B", unit_scale=True, desc=url.rsplit("/", 1)[-1], disable=not progress) as bar:
                for block in iter(lambda: response.read(_CHUNK), b""):
                    out.write(block)
                    received += len(block)
                    bar.update(len(block))
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as err:
        reason = f"HTTP {err.code} {err.reason}" if isinstance(err, urllib.error.HTTPError) else getattr(err, "reason", err)
        raise WeightsDownloadError(f"weights: could not download {url}: {reason}") from err
    if total is not None and received != total:
        raise WeightsDownloadError(f"weights: download of {url} was cut short ({received} of {total} bytes)")


def fetch(name: str, *, progress: bool = True, timeout: float = 60.0) -> Path:
    """Path of the official checkpoint ``name`` in the cache, downloaded and verified if needed.

    Args:
      name: one of :data:`OFFICIAL_SHA256` (``converse_dncnn``, ``converse_srresnet``,
        ``conversenet``, ``converse_usrnet``).
      progress: tqdm bar while downloading.
      timeout: seconds to wait for the server on connect and on each read.

    Returns:
      ``cache_dir() / f"{name}.pth"``, a file whose SHA-256 is the official one.

    Raises:
      ValueError: unknown ``name``, or a cached file whose hash is not the official one (the
        message says to delete it). WeightsDownloadError: the server cannot be reached (the
        message names the URL), the transfer is cut short, or the file's hash is wrong;
        nothing is left in the cache then.

    Example:
      A cache pre-filled with the file is used as it is (no network); here a stand-in file,
      which the hash check refuses:

      >>> import tempfile
      >>> tmp = tempfile.TemporaryDirectory()
      >>> os.environ["CONVERSE_JAX_CACHE"] = tmp.name
      >>> _ = (Path(tmp.name) / "conversenet.pth").write_bytes(b"not the checkpoint")
      >>> fetch("conversenet")  # doctest: +ELLIPSIS
      Traceback (most recent call last):
      ...
      ValueError: weights: cached .../conversenet.pth has SHA-256 3c5b1d9b3cb5...; expected 603cbb290751... (delete it to download again)
      >>> fetch("dncnn")  # doctest: +ELLIPSIS
      Traceback (most recent call last):
      ...
      ValueError: weights: 'dncnn' is not an official checkpoint; known: converse_dncnn, ...
      >>> del os.environ["CONVERSE_JAX_CACHE"]; tmp.cleanup()
    """
    expected = OFFICIAL_SHA256[_check_name(name)]
    target = cache_dir() / f"{name}.pth"
    if target.is_file():
        actual = _sha256(target)
        if actual != expected:
            raise ValueError(
                f"weights: cached {target} has SHA-256 {actual[:12]}...; expected {expected[:12]}... "
                "(delete it to download again)"
            )
        return target
    url = weights_url(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            _download(url, out, progress, timeout)
        actual = _sha256(tmp)
        if actual != expected:
            raise WeightsDownloadError(
                f"weights: {url} has SHA-256 {actual}, not the official {expected}; nothing was cached"
            )
        tmp.chmod(default_file_mode())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target
