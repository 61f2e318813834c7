"""Fetching weight files: Hub repos through ``huggingface_hub`` (the standard HF cache), URLs through ``torch.hub``.

Both caches are the ones users already have, so ``HF_HUB_OFFLINE=1`` works once a file is cached. When it is not,
the error names the repo and file and says how to get it. A file pinned by hash is checked before it is read; one this
process downloaded and that does not match is deleted (it never enters the cache), one already there is refused.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlparse

from zoo.errors import SslzooError

__all__ = [
    "check_digest",
    "hub_cached_file",
    "hub_file",
    "offline",
    "parse_hub_id",
    "read_checkpoint",
    "sha256_file",
    "url_cached_file",
    "url_file",
]

HUB_PREFIX = "hf-hub:"
_DIGEST_CACHE: dict[tuple[str, int, int], dict[str, str]] = {}


def offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` is set (read now, so tests and users can flip it at runtime)."""
    import huggingface_hub.constants as hf_constants

    env = os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}
    return env or bool(hf_constants.HF_HUB_OFFLINE)


def parse_hub_id(source: str) -> tuple[str, str | None]:
    """``"hf-hub:ORG/NAME@REV"`` → ``("ORG/NAME", "REV")``; the revision is ``None`` when absent."""
    body = source[len(HUB_PREFIX) :] if source.startswith(HUB_PREFIX) else source
    repo_id, _, revision = body.partition("@")
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise SslzooError(f"{source!r} is not a Hub model id; write it as hf-hub:ORG/NAME[@REVISION].")
    return repo_id, revision or None


def hub_file(repo_id: str, filename: str, revision: str | None = None, sha256: str | None = None) -> Path:
    """Path of ``filename`` from Hub repo ``repo_id`` in the HF cache, downloading it first when online.

    Args:
        repo_id: ``ORG/NAME``.
        filename: File in the repo.
        revision: Commit, branch or tag; ``None`` is ``main``.
        sha256: Expected SHA-256 (or a prefix); a file downloaded now that does not match is deleted again.

    Raises:
        SslzooError: offline and not cached, unknown repo/file/revision, no connection, or a hash mismatch.
    """
    cached = hub_cached_file(repo_id, filename, revision) is not None
    path = _hub_download(repo_id, filename, revision)
    if sha256:
        check_digest(path, sha256=sha256, downloaded=not cached)
    return path


def _hub_download(repo_id: str, filename: str, revision: str | None) -> Path:
    import huggingface_hub
    from huggingface_hub import errors

    at = f"@{revision}" if revision else ""
    try:
        return Path(huggingface_hub.hf_hub_download(repo_id, filename, revision=revision))
    except errors.LocalEntryNotFoundError:
        how = "HF_HUB_OFFLINE is set" if offline() else "the Hub cannot be reached"
        raise SslzooError(
            f"{filename} of {repo_id}{at} is not in the Hugging Face cache and {how}; on a machine with internet run "
            f"`hf download {repo_id} {filename}{' --revision ' + revision if revision else ''}` and copy the "
            "cache (HF_HUB_CACHE), or unset HF_HUB_OFFLINE."
        ) from None
    except errors.RepositoryNotFoundError:
        raise SslzooError(
            f"Hub repo {repo_id} does not exist or is private (log in with `hf auth login` if it is yours)."
        ) from None
    except errors.RevisionNotFoundError:
        raise SslzooError(f"Hub repo {repo_id} has no revision {revision!r}.") from None
    except errors.EntryNotFoundError:
        raise SslzooError(f"Hub repo {repo_id}{at} has no file {filename}.") from None
    except (errors.HfHubHTTPError, OSError) as exc:
        raise SslzooError(f"could not download {filename} of {repo_id}{at}: {exc}") from None


def hub_cached_file(repo_id: str, filename: str, revision: str | None = None) -> Path | None:
    """The cached path of a Hub file, or ``None`` when it has not been downloaded (never touches the network)."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, filename, revision=revision)
    return Path(found) if isinstance(found, str) else None


def snapshot_revision(path: Path) -> str | None:
    """The commit hash of a file in the HF cache (``…/snapshots/<commit>/file``), or ``None`` elsewhere."""
    parts = path.parts
    if "snapshots" in parts:
        i = parts.index("snapshots")
        if i + 1 < len(parts):
            return parts[i + 1]
    return None


def url_cached_file(url: str) -> Path:
    """Where ``torch.hub`` keeps the download of ``url`` (``$TORCH_HOME/hub/checkpoints/<file name>``)."""
    return torch_hub_dir() / "checkpoints" / os.path.basename(urlparse(url).path)


def torch_hub_dir() -> Path:
    """``torch.hub.get_dir()``; without importing torch when it is not loaded yet (``sslzoo models`` asks whether
    files are cached), by torch's own rule: ``$TORCH_HOME/hub``, else ``$XDG_CACHE_HOME/torch/hub``, else
    ``~/.cache/torch/hub``. Once torch is loaded its answer counts (it may have been moved by ``set_dir``)."""
    import sys

    if "torch.hub" in sys.modules:
        return Path(sys.modules["torch.hub"].get_dir())
    cache = os.getenv("XDG_CACHE_HOME", os.path.join("~", ".cache"))
    return Path(os.path.expanduser(os.getenv("TORCH_HOME", os.path.join(cache, "torch")))) / "hub"


def url_file(url: str, sha256: str | None = None, md5: str | None = None) -> Path:
    """Path of ``url``'s file in torch.hub's cache, downloading it (with a progress bar) if needed.

    The download goes to a temporary name beside the cache entry and is moved into place only once its hash matches
    the pin (``sha256`` or, where only that is published, ``md5``); a mismatching download is deleted.

    Raises:
        SslzooError: offline and not cached, download failure, or a hash mismatch.
    """
    import torch.hub

    dst = url_cached_file(url)
    if dst.is_file():
        if sha256 or md5:
            check_digest(dst, sha256=sha256, md5=md5, downloaded=False)
        return dst
    if offline():
        raise SslzooError(
            f"{dst.name} is not in torch.hub's cache ({dst.parent}) and HF_HUB_OFFLINE is set; download "
            f"{url} to {dst} on a machine with internet, or unset HF_HUB_OFFLINE."
        )
    dst.parent.mkdir(parents=True, exist_ok=True)
    partial = dst.with_name(f".{dst.name}.{os.getpid()}.partial")
    try:
        torch.hub.download_url_to_file(url, str(partial), progress=True)
    except Exception as exc:  # urllib raises several unrelated types; all mean the same to the user
        partial.unlink(missing_ok=True)
        raise SslzooError(
            f"could not download {url} ({exc}); download it by hand to {dst} and load again."
        ) from None
    if sha256 or md5:
        check_digest(partial, sha256=sha256, md5=md5, downloaded=True, name=url)
    os.replace(partial, dst)
    return dst


def file_digests(path: str | Path) -> dict[str, str]:
    """Hex SHA-256 and MD5 of a file (one read), remembered per (path, size, mtime) so loads do not hash again."""
    path = Path(path).resolve()
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGEST_CACHE:
        sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                sha.update(block)
                md5.update(block)
        _DIGEST_CACHE[key] = {"sha256": sha.hexdigest(), "md5": md5.hexdigest()}
    return _DIGEST_CACHE[key]


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file (cached, see :func:`file_digests`)."""
    return file_digests(path)["sha256"]


def check_digest(
    path: Path,
    *,
    sha256: str | None = None,
    md5: str | None = None,
    downloaded: bool = False,
    name: str | None = None,
) -> None:
    """Refuse a file whose SHA-256 (or MD5) does not start with the pinned hex digest.

    Args:
        path: The file.
        sha256: Pinned SHA-256 (full or a prefix); checked when given.
        md5: Pinned MD5, checked when no SHA-256 is pinned.
        downloaded: The caller fetched the file just now: delete it (a Hub snapshot link with its blob).
        name: What to call the file in the message (the URL of a download); defaults to ``path``.

    Raises:
        SslzooError: one line naming the file, both digests and what happened to the file.
    """
    algo, expected = ("sha256", sha256) if sha256 else ("md5", md5)
    if not expected:
        return
    actual = file_digests(path)[algo]
    if actual.startswith(expected.lower()):
        return
    label = name or str(path)
    if downloaded:
        _remove_download(path)
        fate = "the download was deleted; the file changed upstream or the transfer was corrupted"
    else:
        fate = f"delete {path} and load again to download it afresh"
    shown = "SHA-256" if algo == "sha256" else "MD5"
    raise SslzooError(f"{label} has {shown} {actual[:16]}…, expected {expected[:16]}…: {fate}.")


def _remove_download(path: Path) -> None:
    """Delete a file fetched by this process: a Hub snapshot entry is a link to a blob, so remove both."""
    blob = path.resolve() if path.is_symlink() else None
    path.unlink(missing_ok=True)
    if blob is not None:
        blob.unlink(missing_ok=True)


def _unreadable(path: Path, exc: Exception) -> str:
    """What was found in a file torch or safetensors refused, in words (never torch's advice to drop weights_only)."""
    text = str(exc)
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if found:
        return (
            f"it pickles a {found.group(1)} object, which weights-only loading does not execute (it reads tensors "
            "and plain containers only): this is not a plain weights file (a full training checkpoint?); use the "
            "weights file the registry names, or save the state dict of a copy you trust as safetensors"
        )
    with open(path, "rb") as f:
        head = f.read(64)
    if not head:
        return "the file is empty; delete it and download (or export) it again"
    if head.startswith(b"version https://git-lfs"):
        return "it is a Git LFS pointer, not the weights: fetch the file itself (git lfs pull)"
    if head.lstrip().lower().startswith((b"<!doctype", b"<html", b"<?xml")):
        return "it is a web page, not a checkpoint (a failed or redirected download); delete it and download it again"
    if "Unsupported operand" in text or "invalid load key" in text:
        return (
            f"it is neither a PyTorch checkpoint nor a safetensors file (it starts with {head[:16]!r}); "
            "delete it and download (or export) it again"
        )
    reason = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return f"{reason[:160]}; the file is corrupted or truncated — delete it and download (or export) it again"


def read_checkpoint(path: str | Path) -> Mapping[str, object]:
    """Read a ``.safetensors`` file, or a ``.pth``/``.pth.tar``/``.bin`` with ``torch.load(weights_only=True)``.

    Raises:
        SslzooError: the file is missing, truncated, corrupted, not a checkpoint, or pickles more than tensors and
            plain containers (the message names what it found).
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise SslzooError(f"checkpoint {path} does not exist.")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # safetensors, pickle and zip all raise their own types for a bad file
        raise SslzooError(f"cannot read checkpoint {path}: {_unreadable(path, exc)}.") from None
