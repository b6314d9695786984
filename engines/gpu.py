"""What GPU this machine has and whether TensorRT can run on it (engines load plans; export/ builds them)."""

from __future__ import annotations

import shutil
import subprocess

from .errors import MissingModelError

INSTALL_HINT = "pip install 'livedub[gpu]'"


def gpu_name() -> str | None:
    """The first CUDA GPU's name (torch if it sees one, else nvidia-smi), or None when there is none."""
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return _smi("name")


def _smi(field: str) -> str | None:
    """One field of the first GPU from nvidia-smi, or None (no driver, no GPU)."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    try:
        out = subprocess.run([exe, f"--query-gpu={field}", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    first = out.strip().splitlines()[:1]
    return first[0].strip() if first and first[0].strip() else None


def driver_version() -> str | None:
    return _smi("driver_version")


def require_tensorrt():
    """The tensorrt module, on a machine with a CUDA GPU; else one clear MissingModelError."""
    try:
        import tensorrt as trt
    except ImportError:
        raise MissingModelError(f"TensorRT is not installed: {INSTALL_HINT}") from None
    except OSError as exc:  # the wheel is there but its CUDA libraries are not
        raise MissingModelError(f"TensorRT cannot load its libraries ({exc}); reinstall with {INSTALL_HINT}") from None
    if gpu_name() is None:
        raise MissingModelError("TensorRT needs an NVIDIA GPU with its driver; none is visible on this machine")
    return trt
