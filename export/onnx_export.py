"""Wav2Lip checkpoint → ONNX (once per checkpoint, cached by its sha256) and optional static int8.

The runtime never runs torch: a user's first run converts the checkpoint here and every later run opens the
cached .onnx straight away. `livedub export --checkpoint PATH --onnx OUT.onnx` calls `export_onnx`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from livedub.engines.files import atomic_write, check_input_file
from livedub.engines.models import cache_dir, sha256_file

INPUT_NAMES = ("mel", "face")
OUTPUT_NAME = "out"


def _subpixel_up(up):
    """An UpBlock (ConvTranspose2d → BatchNorm → ReLU) as the same function built from a plain Conv2d.

    ONNX Runtime has no int8 ConvTranspose: left as is, the decoder's six transposed convs stay fp32 and
    take half the int8 model's time. A stride-2, pad-1, output-pad-1 3×3 transposed conv equals a 2×2 conv
    over the input padded right/bottom by one, giving the four output phases as channels, then a pixel
    shuffle; the stride-1 one is a padded conv with the kernel flipped. BatchNorm is folded into the conv.
    Exact up to float rounding.
    """
    import torch
    from torch import nn
    from torch.nn import functional as F

    transposed, bn = up.conv_block
    w, bias = transposed.weight.detach(), transposed.bias.detach()  # w: (Cin, Cout, 3, 3)
    scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
    shift = bn.bias.detach() + (bias - bn.running_mean) * scale
    cin, cout = w.shape[:2]
    geometry = (transposed.kernel_size, transposed.stride, transposed.padding, transposed.output_padding)
    if geometry == ((3, 3), (1, 1), (0, 0), (0, 0)):
        conv = nn.Conv2d(cin, cout, 3, padding=2)
        conv.weight.data.copy_(w.flip(2, 3).transpose(0, 1) * scale[:, None, None, None])
        conv.bias.data.copy_(shift)
        crop, shuffle = 0, nn.Identity()
    elif geometry == ((3, 3), (2, 2), (1, 1), (1, 1)):
        taps = {0: {0: 1}, 1: {0: 2, 1: 0}}  # output phase → {input offset: kernel index}
        kernel = torch.zeros(cout, 2, 2, cin, 2, 2)
        for a, rows in taps.items():
            for b, cols in taps.items():
                for di, ki in rows.items():
                    for dj, kj in cols.items():
                        kernel[:, a, b, :, di, dj] = w[:, :, ki, kj].T
        # padding 1 all round, then drop the first row/column: the same as padding right/bottom only
        conv = nn.Conv2d(cin, 4 * cout, 2, padding=1)
        conv.weight.data.copy_((kernel * scale[:, None, None, None, None, None]).reshape(4 * cout, cin, 2, 2))
        conv.bias.data.copy_(shift.repeat_interleave(4))
        crop, shuffle = 1, nn.PixelShuffle(2)
    else:
        return up

    class SubPixelUp(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.shuffle = conv, shuffle

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.relu(self.shuffle(self.conv(x)[:, :, crop:, crop:]))

    return SubPixelUp()


def runtime_graph(model):
    """A copy of the generator with every transposed conv rewritten for int8-friendly runtimes."""
    import copy

    from livedub.engines.lipsync.wav2lip_model import UpBlock

    model = copy.deepcopy(model).eval()
    for stage in model.face_decoder_blocks:
        for i, block in enumerate(stage):
            if isinstance(block, UpBlock):
                stage[i] = _subpixel_up(block)
    return model


def export_model(model, out_path: str | os.PathLike, *, opset: int = 17, fp16: bool = False,
                 subpixel: bool = True) -> Path:
    """Write an eval-mode generator as ONNX: inputs `mel` (B,1,80,16), `face` (B,6,96,96); output `out`.

    `subpixel` replaces transposed convs by equivalent convs (see `_subpixel_up`); the model is not changed.
    """
    import torch

    out_path = Path(out_path)
    model = runtime_graph(model) if subpixel else model.eval()
    if fp16:
        model = model.half()
    dtype = torch.float16 if fp16 else torch.float32
    example = (torch.zeros(2, 1, 80, 16, dtype=dtype), torch.zeros(2, 6, 96, 96, dtype=dtype))
    with atomic_write(out_path) as partial, torch.no_grad():  # a killed export leaves no half file
        torch.onnx.export(
            model, example, str(partial), input_names=list(INPUT_NAMES), output_names=[OUTPUT_NAME],
            dynamic_axes={name: {0: "batch"} for name in (*INPUT_NAMES, OUTPUT_NAME)},
            opset_version=opset, do_constant_folding=True, dynamo=False,
        )
    return out_path


def export_onnx(checkpoint_path: str | os.PathLike, out_path: str | os.PathLike, *, opset: int = 17,
                fp16: bool = False) -> Path:
    """Convert an official Wav2Lip checkpoint (or bare state dict) to ONNX at `out_path` (atomic write)."""
    from livedub.engines.lipsync.wav2lip_model import load_generator

    return export_model(load_generator(checkpoint_path), out_path, opset=opset, fp16=fp16)


def cached_onnx(checkpoint_path: str | os.PathLike, cache: Path | None = None) -> Path:
    """The fp32 ONNX of a checkpoint in `cache`/wav2lip/<sha256>.onnx (`Settings.cache`), exported on first
    use only."""
    checkpoint_path = Path(checkpoint_path)
    check_input_file(checkpoint_path, what="a Wav2Lip checkpoint such as wav2lip_gan.pth")
    target = cache_dir(cache) / "wav2lip" / f"{sha256_file(checkpoint_path)}.onnx"
    if not target.exists():
        export_onnx(checkpoint_path, target)
    return target


class _Calibration:
    """Feeds (mel, face) batches to onnxruntime's calibrator (the CalibrationDataReader protocol)."""

    def __init__(self, faces: np.ndarray, mels: np.ndarray, batch: int):
        self._batches = iter(self._split(np.asarray(faces, np.float32), np.asarray(mels, np.float32), batch))

    @staticmethod
    def _split(faces: np.ndarray, mels: np.ndarray, batch: int) -> Iterator[dict[str, np.ndarray]]:
        for i in range(0, len(faces), batch):
            yield {"mel": mels[i : i + batch], "face": faces[i : i + batch]}

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)

    def rewind(self) -> None:  # not needed for MinMax; kept for the protocol
        pass


def quantize_int8(onnx_path: str | os.PathLike, out_path: str | os.PathLike, calibration_faces: np.ndarray,
                  calibration_mels: np.ndarray, *, per_channel: bool = True, reduce_range: bool = False,
                  exclude_transpose: bool = False, batch: int = 8) -> Path:
    """Static int8 (QDQ, per-channel weights, uint8 activations) calibrated on real face crops and mels.

    `calibration_faces` (N,6,96,96) and `calibration_mels` (N,1,80,16) are model inputs from real video and
    speech: activation ranges come from them, so random inputs would calibrate the wrong ranges.
    """
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    faces = np.asarray(calibration_faces, np.float32)
    mels = np.asarray(calibration_mels, np.float32)
    if faces.ndim != 4 or faces.shape[1:] != (6, 96, 96) or mels.shape != (len(faces), 1, 80, 16):
        raise ValueError(f"calibration wants faces (N,6,96,96) and mels (N,1,80,16), got {faces.shape} {mels.shape}")

    class Reader(_Calibration, CalibrationDataReader):
        pass

    out_path = Path(out_path)
    with atomic_write(out_path) as partial:
        pre = partial.with_suffix(".pre.onnx")
        try:
            quant_pre_process(str(onnx_path), str(pre), skip_symbolic_shape=True)
            nodes = _transpose_nodes(pre) if exclude_transpose else []
            quantize_static(
                str(pre), str(partial), Reader(faces, mels, batch), quant_format=QuantFormat.QDQ,
                per_channel=per_channel, reduce_range=reduce_range, activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8, nodes_to_exclude=nodes,
            )
        finally:
            pre.unlink(missing_ok=True)
    return out_path


def _transpose_nodes(path: Path) -> list[str]:
    import onnx

    return [n.name for n in onnx.load(str(path), load_external_data=False).graph.node if n.op_type == "ConvTranspose"]


def cached_int8(checkpoint_path: str | os.PathLike, calibration_faces: np.ndarray,
                calibration_mels: np.ndarray, cache: Path | None = None) -> Path:
    """The int8 model of a checkpoint in `cache` (…/<sha256>.int8.onnx), calibrated on first use only."""
    fp32 = cached_onnx(checkpoint_path, cache)
    target = fp32.with_suffix(".int8.onnx")
    if not target.exists():
        quantize_int8(fp32, target, calibration_faces, calibration_mels)
    return target


def int8_error(fp32_path: str | os.PathLike, int8_path: str | os.PathLike, faces: np.ndarray,
               mels: np.ndarray) -> dict[str, float]:
    """How far int8 outputs are from fp32 on the same inputs (values in [0, 1]; ×255 for pixel levels)."""
    import onnxruntime as ort

    feeds = {"mel": np.asarray(mels, np.float32), "face": np.asarray(faces, np.float32)}
    outs = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
            for p in (fp32_path, int8_path)]
    diff = np.abs(outs[0] - outs[1])
    return {"max_abs": float(diff.max()), "mean_abs": float(diff.mean()),
            "p99_abs": float(np.percentile(diff, 99))}
