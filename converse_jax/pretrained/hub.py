"""Released checkpoints by name: download once, verify the SHA-256, cache (with ``pooch``).

``fetch("converse_dncnn")`` returns the path of ``converse_dncnn.pth`` in the cache folder,
downloading it first if it is not there. Every network whose record has released weights
(:attr:`converse_jax.models.ModelSpec.pretrained`, a :class:`~converse_jax.models.PretrainedCfg`:
file name, SHA-256, URL) can be fetched; ``list_models(pretrained=True)`` lists them.

* source: the record's URL, or ``{base}/{file}`` with ``base`` the value of the environment
  variable ``CONVERSE_JAX_WEIGHTS_URL`` (a mirror; the hashes are still checked);
* cache: ``$CONVERSE_JAX_CACHE`` if set, else ``~/.cache/converse_jax``; the file is
  ``CACHE/<file>`` (pre-filling the cache with the official files works offline);
* integrity: every file is checked against the record's SHA-256 -- a download that does not
  match is refused and nothing is cached; a cached file is re-checked on each use.

``pooch.retrieve`` downloads to a temporary file in the cache folder (tqdm progress bar on
stderr) and moves it onto the final name only after its hash matches, so an interrupted or
corrupt transfer never leaves a file under the final name.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import pooch
import requests

from converse_jax.models.registry import MODELS, PretrainedCfg, list_models
from converse_jax.utils.atomic import default_file_mode

__all__ = ["WeightsDownloadError", "cache_dir", "fetch", "weights_url"]


class WeightsDownloadError(OSError):
    """A checkpoint could not be downloaded, or what arrived is not the official file.

    An ``OSError``, like the network errors it wraps.

    Example:
      >>> isinstance(WeightsDownloadError("weights: could not download ..."), OSError)
      True
    """


def _pretrained(name: str) -> PretrainedCfg:
    """The released weights of network ``name``; ``ValueError`` listing those that have some."""
    cfg = MODELS[name].pretrained if name in MODELS else None
    if cfg is None:
        raise ValueError(f"weights: {name!r} is not an official checkpoint; known: {', '.join(list_models(pretrained=True))}")
    return cfg


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
    """Download address of the released weights of ``name`` (``$CONVERSE_JAX_WEIGHTS_URL`` replaces the base).

    Example:
      >>> weights_url("conversenet").endswith("/368aa39cebaa075b04926264c7494d969e8ee835/model_zoo/conversenet.pth")
      True
      >>> os.environ["CONVERSE_JAX_WEIGHTS_URL"] = "http://mirror.example/weights/"
      >>> weights_url("conversenet")
      'http://mirror.example/weights/conversenet.pth'
      >>> del os.environ["CONVERSE_JAX_WEIGHTS_URL"]
    """
    cfg = _pretrained(name)
    mirror = os.environ.get("CONVERSE_JAX_WEIGHTS_URL")
    return f"{mirror.rstrip('/')}/{cfg.file}" if mirror else cfg.url


def _download_error(url: str, err: Exception, expected: str) -> WeightsDownloadError:
    """One line naming the URL and what went wrong, from ``pooch``'s or ``requests``' exception."""
    if isinstance(err, requests.HTTPError) and err.response is not None:
        reason = f"HTTP {err.response.status_code} {err.response.reason}"
    elif isinstance(err, ValueError) and "hash" in str(err):  # pooch: the hash does not match
        got = re.search(r"got ([0-9a-fA-F]{64})", str(err))
        actual = got[1] if got else "another value"
        return WeightsDownloadError(f"weights: {url} has SHA-256 {actual}, not the official {expected}; nothing was cached")
    else:
        reason = " ".join(str(err).split()) or type(err).__name__
    return WeightsDownloadError(f"weights: could not download {url}: {reason}")


def fetch(name: str, *, progress: bool = True, timeout: float = 60.0) -> Path:
    """Path of the released weights of ``name`` in the cache, downloaded and verified if needed.

    Args:
      name: a network with released weights (``list_models(pretrained=True)``:
        ``converse_dncnn``, ``converse_srresnet``, ``conversenet``, ``converse_usrnet``).
      progress: tqdm bar while downloading.
      timeout: seconds to wait for the server on connect and on each read.

    Returns:
      ``cache_dir() / <file>``, a file whose SHA-256 is the record's.

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
    cfg = _pretrained(name)
    target = cache_dir() / cfg.file
    if target.is_file():
        actual = pooch.file_hash(str(target), alg="sha256")
        if actual != cfg.sha256:
            raise ValueError(
                f"weights: cached {target} has SHA-256 {actual[:12]}...; expected {cfg.sha256[:12]}... "
                "(delete it to download again)"
            )
        return target
    url = weights_url(name)
    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel(logging.WARNING)  # pooch announces each download; the progress bar says enough
    try:
        path = pooch.retrieve(
            url, known_hash=f"sha256:{cfg.sha256}", fname=cfg.file, path=target.parent,
            downloader=pooch.HTTPDownloader(progressbar=progress, timeout=timeout),
        )  # fmt: skip
    except (requests.RequestException, OSError, ValueError) as err:
        raise _download_error(url, err, cfg.sha256) from err
    finally:
        logger.setLevel(level)
    Path(path).chmod(default_file_mode())  # pooch writes 0600 temporary files; the user's umask applies
    return Path(path)
