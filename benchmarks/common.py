"""Shared by the benchmark scripts: describe the machine, print a table, write the results file."""

from __future__ import annotations

import json
import os
import platform
import socket
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    """What the numbers were measured on."""
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "host": socket.gethostname(),
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    info.update(gpu_info())
    return info


def gpu_info() -> dict:
    """The GPU, its driver, torch's CUDA and TensorRT versions; empty on a machine without an NVIDIA GPU."""
    from livedub.export.tensorrt_build import driver_version, gpu_name

    name = gpu_name()
    if name is None:
        return {}
    info: dict = {"gpu": name, "driver": driver_version()}
    try:
        import torch

        info["torch"], info["torch_cuda"] = torch.__version__, torch.version.cuda
    except ImportError:
        pass
    try:
        import tensorrt

        info["tensorrt"] = tensorrt.__version__
    except (ImportError, OSError):
        info["tensorrt"] = None
    return info


def table(rows: list[dict], columns: list[str]) -> str:
    """A plain-text table of dict rows; floats printed with 3 decimals (1 from 100 up)."""
    from livedub.engines.metrics import format_table

    def cell(v: object) -> str:
        if isinstance(v, float):
            return f"{v:.3f}" if abs(v) < 100 else f"{v:.1f}"
        return "-" if v is None else str(v)

    return format_table([columns] + [[cell(r.get(c)) for c in columns] for r in rows], max_width=200)


def write_results(name: str, rows: list[dict], extra: dict | None = None) -> Path:
    """benchmarks/results/<name>-<host>.json with the machine named."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    info = machine()
    path = RESULTS / f"{name}-{info['host']}.json"
    path.write_text(json.dumps({"benchmark": name, "machine": info, "rows": rows, **(extra or {})}, indent=2) + "\n")
    return path
