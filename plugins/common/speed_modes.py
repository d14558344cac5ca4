"""How a network runs fast at inference: mixed precision (autocast), the channels-last memory format, torch.compile.

The flags ``--amp {bf16,fp16}``, ``--channels-last``, ``--compile`` and ``--compile-backend`` of ``tools/infer.py`` and
``tools/benchmark.py`` (``add_speed_arguments``), and what they do to a network (``SpeedModes``):

* ``--amp``: the forward passes run under ``torch.autocast(device_type=<the network's device type>, dtype)``, so on
  CPU too (bfloat16 and float16 autocast both exist there). The weights stay float32; layers that a line keeps in
  float32 (its "fp32 islands") do so inside autocast. Outputs come back in the autocast dtype: callers cast them to
  float32 before turning them into images (``tiled_inference.tile_forward`` does).
* ``--channels-last``: the network's 4-D weights in ``torch.channels_last``; inputs converted by ``to_input``.
* ``--compile``: ``nn.Module.compile`` (torch.compile in place: the module keeps its class and attributes, so the
  lines' adapters still recognise it) with ``--compile-backend`` (default inductor; ``aot_eager`` or ``eager``
  compile in seconds on a CPU, for tests). Only the module's own ``forward`` is compiled: an adapter that calls
  sub-networks directly (CMDSR's condition and SR networks) runs those uncompiled.
"""
import argparse
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from ..engine.basicsr.mixed_precision import DTYPES

AMP_DTYPES = DTYPES  # --amp bf16|fp16: the dtypes of BasicSR's train:amp


def add_speed_arguments(parser: argparse.ArgumentParser) -> None:
    """The speed flags shared by ``tools/infer.py`` and ``tools/benchmark.py``."""
    parser.add_argument('--amp', choices=sorted(AMP_DTYPES), default=None,
                        help='mixed precision: torch.autocast on the device in bfloat16 or float16 (CPU too); '
                        'outputs are cast back to float32')
    parser.add_argument('--channels-last', action='store_true', help='channels-last memory format (NHWC)')
    parser.add_argument('--compile', action='store_true', help='torch.compile the network (in place)')
    parser.add_argument('--compile-backend', default='inductor', metavar='NAME',
                        help='torch.compile backend (default: inductor; aot_eager or eager compile fast on CPU)')


@dataclass
class SpeedModes:
    """The speed modes of one run. ``amp``: None, 'bf16' or 'fp16'."""

    amp: Optional[str] = None
    channels_last: bool = False
    compile: bool = False
    compile_backend: str = 'inductor'

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> 'SpeedModes':
        return cls(getattr(args, 'amp', None), bool(getattr(args, 'channels_last', False)),
                   bool(getattr(args, 'compile', False)), getattr(args, 'compile_backend', None) or 'inductor')

    def apply(self, net: nn.Module) -> nn.Module:
        """Put ``net`` in the memory format and compile it in place (on first call); returns ``net``.

        ``.to(device)`` afterwards keeps the channels-last strides (``Tensor.to`` preserves the memory format)."""
        if self.channels_last:
            net = net.to(memory_format=torch.channels_last)
        if self.compile:
            net.compile(backend=self.compile_backend)
        return net

    def to_input(self, x: torch.Tensor) -> torch.Tensor:
        """A 4-D input ``(N, C, H, W)`` in the memory format (other tensors unchanged)."""
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.dim() == 4 else x

    def autocast(self, device: torch.device):
        """``torch.autocast`` on ``device``'s type in the ``amp`` dtype, or a context that does nothing."""
        if self.amp is None:
            return nullcontext()
        return torch.autocast(device_type=torch.device(device).type, dtype=AMP_DTYPES[self.amp])

    def describe(self) -> str:
        """E.g. 'amp bf16, channels_last, torch.compile (aot_eager)' or 'fp32, contiguous, eager'."""
        return ', '.join([f'amp {self.amp}' if self.amp else 'fp32',
                          'channels_last' if self.channels_last else 'contiguous',
                          f'torch.compile ({self.compile_backend})' if self.compile else 'eager'])
