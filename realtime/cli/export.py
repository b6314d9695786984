"""`livedub export --checkpoint wav2lip_gan.pth`: ONNX (and a TensorRT plan) ahead of time."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from livedub.engines.settings import cache_path

from ..outputs import ONNX, TENSORRT, atomic_output
from .common import check_input_files, check_range, common_flags, output_plan


def register(sub) -> None:
    p = sub.add_parser(
        "export", help="convert a Wav2Lip checkpoint to ONNX (and a TensorRT engine) ahead of time",
        description="Export the generator of an official Wav2Lip checkpoint to ONNX (dynamic batch, inputs "
                    "'mel' (B,1,80,16) and 'face' (B,6,96,96)). lipsync does this itself on first use and "
                    "caches the result by the checkpoint's sha256.",
    )
    p.add_argument("--checkpoint", required=True, metavar="PATH", help="wav2lip.pth or wav2lip_gan.pth")
    p.add_argument("--onnx", metavar="OUT.onnx", help="output path (default: beside the checkpoint)")
    p.add_argument("--fp16", action="store_true", help="half precision: fp16 ONNX weights, fp16 TensorRT kernels")
    p.add_argument("--tensorrt", metavar="OUT.plan", help="also build a TensorRT engine (needs an NVIDIA GPU and "
                   "pip install 'livedub[gpu]'); cached by checkpoint, GPU and TensorRT version")
    p.add_argument("--max-batch", type=int, default=64, metavar="N",
                   help="largest batch of the TensorRT engine (1..1024; 64)")
    common_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """livedub export --checkpoint wav2lip_gan.pth [--onnx OUT.onnx] [--tensorrt OUT.plan]: convert ahead of time."""
    import shutil

    from livedub.export.onnx_export import export_onnx

    check_input_files(args)
    checkpoint = Path(args.checkpoint)
    check_range("--max-batch", args.max_batch, 1, 1024)
    outputs = output_plan(args)
    onnx = None
    if args.onnx is not None or not args.tensorrt:
        onnx = outputs.add("--onnx", args.onnx if args.onnx is not None else checkpoint.with_suffix(".onnx"), ONNX)
    outputs.add("--tensorrt", args.tensorrt, TENSORRT)
    if args.tensorrt:
        from livedub.export.tensorrt_build import require_tensorrt

        require_tensorrt()  # say so at once on a machine without TensorRT or a GPU, before any export
    with outputs:  # the ONNX file and the engine appear together when both are built, neither otherwise
        started = time.perf_counter()
        if onnx is not None:
            export_onnx(checkpoint, onnx, fp16=args.fp16)  # an atomic write the plan holds until the end
            print(f"{onnx}: exported in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        if args.tensorrt:
            from livedub.export.tensorrt_build import cached_plan

            started = time.perf_counter()
            plan = cached_plan(checkpoint, fp16=args.fp16, max_batch=args.max_batch,
                               cache=cache_path(os.environ))
            with atomic_output(args.tensorrt) as tmp:
                shutil.copyfile(plan, tmp)
            print(f"{args.tensorrt}: TensorRT engine ({'fp16' if args.fp16 else 'fp32'}, batch 1..{args.max_batch}) "
                  f"in {time.perf_counter() - started:.1f} s (cached as {plan})", file=sys.stderr)
    return 0
