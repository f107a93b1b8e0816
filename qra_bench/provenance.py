"""Provenance of a result: library versions, the host and device, the code version, UTC timestamps.

Every row of a results table carries these so that a number can be traced to the software and hardware
that produced it. Nothing here imports a heavy library except :func:`host_info` (torch, only to name the
CUDA device), so recording provenance costs milliseconds.
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

#: Distributions whose versions change results (numerics, quantization kernels, file format).
TRACKED_LIBRARIES: tuple[str, ...] = (
    "torch",
    "transformers",
    "peft",
    "hqq",
    "torchao",
    "bitsandbytes",
    "numpy",
    "pyarrow",
)


def library_versions(names: tuple[str, ...] = TRACKED_LIBRARIES) -> dict[str, str]:
    """Installed version of each distribution, ``"absent"`` for one that is not installed.

    Read from package metadata, so nothing is imported (importing torch alone takes seconds).
    """
    versions: dict[str, str] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def device_name() -> str:
    """``"cpu"``, or the name of CUDA device 0 when torch sees one (e.g. ``"NVIDIA H200"``)."""
    try:
        import torch
    except ImportError:
        return "cpu"
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return "cpu"


def host_info() -> dict[str, object]:
    """Hostname, platform string, Python version, logical CPU count and the device string."""
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count() or 1,
        "device": device_name(),
    }


def code_version() -> str:
    """The package version, plus ``+g<commit>`` (and ``.dirty``) when running from a git checkout.

    A dirty tree is flagged because its results cannot be reproduced from the commit alone.
    """
    from qra_bench import __version__

    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
        )
        if commit.returncode != 0:
            return __version__
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return __version__
    version = f"{__version__}+g{commit.stdout.strip()}"
    if status.returncode == 0 and status.stdout.strip():
        version += ".dirty"
    return version


def utc_now_iso() -> str:
    """The current time as an ISO-8601 UTC string with microseconds, e.g. ``2025-01-31T12:00:00.123456+00:00``."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")
