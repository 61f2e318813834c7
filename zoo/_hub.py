"""Fetching weight files: Hub repos through ``huggingface_hub`` (the standard HF cache), URLs through ``torch.hub``.

Both caches are the ones users already have, so ``HF_HUB_OFFLINE=1`` works once a file is cached. When it is not,
the error names the repo and file and says how to get it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlparse

from zoo.errors import SslzooError

__all__ = [
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
_SHA_CACHE: dict[tuple[str, int, int], str] = {}


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


def hub_file(repo_id: str, filename: str, revision: str | None = None) -> Path:
    """Path of ``filename`` from Hub repo ``repo_id`` in the HF cache, downloading it first when online.

    Raises:
        SslzooError: offline and not cached, unknown repo/file/revision, or no connection.
    """
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
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


def url_file(url: str, sha256: str | None = None) -> Path:
    """Path of ``url``'s file in torch.hub's cache, downloading it (atomically, with a progress bar) if needed.

    Raises:
        SslzooError: offline and not cached, download failure, or a SHA-256 mismatch.
    """
    import torch.hub

    dst = url_cached_file(url)
    if not dst.is_file():
        if offline():
            raise SslzooError(
                f"{dst.name} is not in torch.hub's cache ({dst.parent}) and HF_HUB_OFFLINE is set; download "
                f"{url} to {dst} on a machine with internet, or unset HF_HUB_OFFLINE."
            )
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(url, str(dst), progress=True)
        except Exception as exc:  # urllib raises several unrelated types; all mean the same to the user
            raise SslzooError(
                f"could not download {url} ({exc}); download it by hand to {dst} and load again."
            ) from None
    if sha256:
        check_sha256(dst, sha256)
    return dst


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file, remembered per (path, size, mtime) so repeated loads do not hash again."""
    path = Path(path).resolve()
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _SHA_CACHE:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        _SHA_CACHE[key] = digest.hexdigest()
    return _SHA_CACHE[key]


def check_sha256(path: Path, expected: str) -> None:
    actual = sha256_file(path)
    if not actual.startswith(expected.lower()):
        raise SslzooError(
            f"{path} has SHA-256 {actual[:16]}…, expected {expected[:16]}…; the download is corrupted or the "
            "file changed upstream: delete it and load again."
        )


def read_checkpoint(path: str | Path) -> Mapping[str, object]:
    """Read a ``.safetensors`` file, or a ``.pth``/``.pth.tar``/``.bin`` with ``torch.load(weights_only=True)``.

    Raises:
        SslzooError: the file is missing, truncated, corrupted, or pickles more than tensors and plain containers.
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
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SslzooError(
            f"cannot read checkpoint {path}: {reason[:200]}; the file is corrupted or truncated — delete it "
            "and download (or export) it again."
        ) from None
