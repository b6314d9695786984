"""The Wav2Lip generator in torch, with the reference's state-dict names and shapes, and checkpoint loading.

Module names mirror the public reference exactly (`face_encoder_blocks.1.0.conv_block.0.weight`, ...) so
official `wav2lip.pth` / `wav2lip_gan.pth` files load without renaming; the fixture's `names`/`shapes` pin it.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Mapping
from functools import cache
from pathlib import Path

import torch
from torch import nn

from ..errors import LivedubError
from ..files import check_input_file

MEL_SHAPE = (1, 80, 16)
FACE_SHAPE = (6, 96, 96)


class ConvBlock(nn.Module):
    """Conv2d → BatchNorm2d → ReLU, with the input added before the ReLU when `residual`."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int | tuple[int, int], padding: int,
                 residual: bool = False):
        super().__init__()
        self.conv_block = nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, padding), nn.BatchNorm2d(cout))
        self.act = nn.ReLU()
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv_block(x)
        if self.residual:
            out = out + x
        return self.act(out)


class UpBlock(nn.Module):
    """ConvTranspose2d → BatchNorm2d → ReLU (the decoder's upsampling step)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, padding: int, output_padding: int = 0):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ConvTranspose2d(cin, cout, kernel, stride, padding, output_padding), nn.BatchNorm2d(cout)
        )
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv_block(x))


def _stage(cin: int, cout: int, n_res: int, kernel: int = 3, stride: int = 2, padding: int = 1) -> nn.Sequential:
    """A downsampling conv followed by `n_res` residual 3×3 convs at the same width."""
    blocks = [ConvBlock(cin, cout, kernel, stride, padding)]
    blocks += [ConvBlock(cout, cout, 3, 1, 1, residual=True) for _ in range(n_res)]
    return nn.Sequential(*blocks)


def _up_stage(cin: int, cout: int, n_res: int, stride: int = 2, padding: int = 1, output_padding: int = 1):
    blocks: list[nn.Module] = [UpBlock(cin, cout, 3, stride, padding, output_padding)]
    blocks += [ConvBlock(cout, cout, 3, 1, 1, residual=True) for _ in range(n_res)]
    return nn.Sequential(*blocks)


class Wav2Lip(nn.Module):
    """forward(mel (B,1,80,16), face (B,6,96,96)) → (B,3,96,96) BGR in [0, 1]; U-Net conditioned on audio."""

    def __init__(self) -> None:
        super().__init__()
        self.face_encoder_blocks = nn.ModuleList([
            nn.Sequential(ConvBlock(6, 16, 7, 1, 3)),  # 96
            _stage(16, 32, 2),  # 48
            _stage(32, 64, 3),  # 24
            _stage(64, 128, 2),  # 12
            _stage(128, 256, 2),  # 6
            _stage(256, 512, 1),  # 3
            nn.Sequential(ConvBlock(512, 512, 3, 1, 0), ConvBlock(512, 512, 1, 1, 0)),  # 1
        ])
        self.audio_encoder = nn.Sequential(
            ConvBlock(1, 32, 3, 1, 1),
            ConvBlock(32, 32, 3, 1, 1, residual=True),
            ConvBlock(32, 32, 3, 1, 1, residual=True),
            ConvBlock(32, 64, 3, (3, 1), 1),  # 27×16
            ConvBlock(64, 64, 3, 1, 1, residual=True),
            ConvBlock(64, 64, 3, 1, 1, residual=True),
            ConvBlock(64, 128, 3, 3, 1),  # 9×6
            ConvBlock(128, 128, 3, 1, 1, residual=True),
            ConvBlock(128, 128, 3, 1, 1, residual=True),
            ConvBlock(128, 256, 3, (3, 2), 1),  # 3×3
            ConvBlock(256, 256, 3, 1, 1, residual=True),
            ConvBlock(256, 512, 3, 1, 0),  # 1×1
            ConvBlock(512, 512, 1, 1, 0),
        )
        self.face_decoder_blocks = nn.ModuleList([
            nn.Sequential(ConvBlock(512, 512, 1, 1, 0)),  # 1
            _up_stage(1024, 512, 1, stride=1, padding=0, output_padding=0),  # 3
            _up_stage(1024, 512, 2),  # 6
            _up_stage(768, 384, 2),  # 12
            _up_stage(512, 256, 2),  # 24
            _up_stage(320, 128, 2),  # 48
            _up_stage(160, 64, 2),  # 96
        ])
        self.output_block = nn.Sequential(
            ConvBlock(80, 32, 3, 1, 1), nn.Conv2d(32, 3, kernel_size=1, stride=1, padding=0), nn.Sigmoid()
        )

    def forward(self, mel: torch.Tensor, face: torch.Tensor) -> torch.Tensor:
        feats = []
        x = face
        for block in self.face_encoder_blocks:
            x = block(x)
            feats.append(x)
        x = self.audio_encoder(mel)
        for block in self.face_decoder_blocks:
            x = torch.cat((block(x), feats.pop()), dim=1)
        return self.output_block(x)


def _describe(path: Path) -> str:
    return f"{path}: not a Wav2Lip checkpoint"


def _read(path: Path, allow_pickle: bool) -> object:
    """torch.load with weights_only=True (official files — tensors, dicts, Adam state — pass); full pickle,
    which can run code from the file, only when the caller trusts it."""
    check_input_file(path, what="a Wav2Lip checkpoint such as wav2lip_gan.pth")
    try:
        return torch.load(path, map_location="cpu", weights_only=not allow_pickle)
    except pickle.UnpicklingError as exc:
        if "Unsupported global" in str(exc):
            raise LivedubError(
                f"{path}: cannot be read safely as a checkpoint (it pickles Python objects besides tensors; "
                "re-save its state_dict, or load it with allow_pickle=True if you trust the file)"
            ) from None
        raise LivedubError(f"{_describe(path)} (torch cannot read it: not a torch file, or a damaged one)") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, AttributeError) as exc:
        raise LivedubError(f"{_describe(path)} (torch cannot read it: {_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]


def _find_state_dict(obj: object) -> Mapping[str, torch.Tensor] | None:
    if not isinstance(obj, Mapping):
        return None
    inner = obj.get("state_dict")
    if isinstance(inner, Mapping):
        obj = inner
    tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    return tensors or None


def load_checkpoint(path: str | os.PathLike, *, allow_pickle: bool = False) -> dict[str, torch.Tensor]:
    """The generator state dict of an official checkpoint, or a bare state dict; optimizer state ignored.

    Strips a DataParallel `module.` prefix. Anything that is not a Wav2Lip generator (not a torch file,
    missing keys, wrong shapes — e.g. the SyncNet expert) raises LivedubError with one readable message.
    `allow_pickle` permits arbitrary pickled objects (and the code they may run): trusted files only.
    """
    path = Path(path)
    found = _find_state_dict(_read(path, allow_pickle))
    if found is None:
        raise LivedubError(f"{_describe(path)} (it holds no tensors under 'state_dict' or at top level)")
    state = {k.removeprefix("module."): v for k, v in found.items()}
    expected = reference_shapes()
    missing = [k for k in expected if k not in state]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise LivedubError(
            f"{_describe(path)} (missing {len(missing)} of {len(expected)} generator weights, e.g. "
            f"{', '.join(missing[:3])}{more}; is it the SyncNet expert or another model?)"
        )
    for key, shape in expected.items():
        if tuple(state[key].shape) != shape:
            raise LivedubError(
                f"{_describe(path)} (weight {key} has shape {tuple(state[key].shape)}, expected {shape})"
            )
    return {k: state[k] for k in expected}


@cache
def reference_shapes() -> dict[str, tuple[int, ...]]:
    """State-dict names → shapes, in order (built on the meta device: no memory, no init time)."""
    with torch.device("meta"):
        return {k: tuple(v.shape) for k, v in Wav2Lip().state_dict().items()}


def build_generator(state_dict: Mapping[str, torch.Tensor] | None = None) -> Wav2Lip:
    """A Wav2Lip generator in eval mode (BatchNorm uses running stats), optionally with weights loaded."""
    model = Wav2Lip()
    if state_dict is not None:
        model.load_state_dict(dict(state_dict), strict=True)
    return model.eval()


def load_generator(path: str | os.PathLike) -> Wav2Lip:
    """The eval-mode generator of checkpoint `path`."""
    return build_generator(load_checkpoint(path))


def random_generator(seed: int = 0) -> Wav2Lip:
    """A generator with seeded random weights and BatchNorm statistics: for parity, shape and speed checks
    only (it draws noise, never a mouth)."""
    gen = torch.Generator().manual_seed(seed)
    model = Wav2Lip()
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            if name.endswith("running_var"):
                tensor.copy_(0.5 + torch.rand(tensor.shape, generator=gen))
            elif name.endswith("running_mean") or name.endswith("bias"):
                tensor.copy_(0.05 * torch.randn(tensor.shape, generator=gen))
            elif tensor.ndim == 1:  # BatchNorm scale
                tensor.copy_(1.0 + 0.1 * torch.randn(tensor.shape, generator=gen))
            else:
                fan_in = tensor[0].numel()
                tensor.copy_(torch.randn(tensor.shape, generator=gen) * (1.0 / fan_in) ** 0.5)
    return model.eval()
