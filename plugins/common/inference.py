"""How ``tools/infer.py`` runs a network on images without ground truth: the plain super-resolution path, and the
adapters that research lines register for networks that need more than an image.

``tools/infer.py`` names no line. It builds its command line from every registered adapter's flags, picks the first
adapter that accepts the network (the lines' adapters before the plain path), refuses the flags of the adapters it
did not pick with their own message, and runs the chosen one on each image. A line adds an adapter by subclassing
``InferenceAdapter`` in its ``inference.py`` and calling ``register_inference_adapter`` at import.
"""
import argparse
from typing import Callable, List, Optional, Tuple

import numpy as np
import torch
from torch import nn

from ..engine.errors import OptionsError
from .tiled_inference import super_resolve

# One image in (BGR uint8 (H, W, 3)), named outputs out: [(suffix added to the file stem, BGR uint8 image), ...].
ImageRunner = Callable[[np.ndarray], List[Tuple[str, np.ndarray]]]


class InferenceAdapter:
    """How ``tools/infer.py`` runs one kind of network. Subclasses set ``name`` and ``flags`` (the argparse ``dest``
    of their own options) and override the methods below."""

    name = 'network'
    flags: Tuple[str, ...] = ()

    def add_arguments(self, group) -> None:
        """Add this adapter's own flags to ``tools/infer.py``'s command line (an argument group named after it)."""

    def accepts(self, net: nn.Module, channels: Optional[int]) -> bool:
        """Whether this adapter runs ``net`` (``channels``: its input channels, None when unknown)."""
        raise NotImplementedError

    def given(self, args: argparse.Namespace) -> bool:
        """Whether the user gave any of this adapter's flags."""
        return any(getattr(args, flag, None) not in (None, False, []) for flag in self.flags)

    def refuse_flags(self, net: nn.Module, channels: Optional[int], where: str) -> str:
        """The message for this adapter's flags given with a network another adapter runs."""
        return f'{", ".join("--" + f.replace("_", "-") for f in self.flags)} are not for {type(net).__name__}'

    def prepare(self, net: nn.Module, channels: Optional[int], args: argparse.Namespace, scale: int, where: str,
                device: torch.device) -> ImageRunner:
        """Check the flags against the network (``OptionsError`` naming the flag), put the network on ``device`` in
        eval mode, and return the function that runs one image."""
        raise NotImplementedError


class SuperResolutionAdapter(InferenceAdapter):
    """Plain SR networks of 1 (Y, with bicubic Cb/Cr) or 3 (RGB) input channels, whole or in tiles
    (``common/tiled_inference.py``), with channels-last inputs under ``--channels-last``."""

    name = 'super-resolution'

    def accepts(self, net: nn.Module, channels: Optional[int]) -> bool:
        return channels in (1, 3)

    def prepare(self, net, channels, args, scale, where, device) -> ImageRunner:
        net = net.eval().to(device)
        channels_last = bool(getattr(args, 'channels_last', False))
        return lambda img: [('', super_resolve(net, img, scale, channels, args.tile, args.tile_pad, channels_last))]


_ADAPTERS: List[InferenceAdapter] = []
_DEFAULT = SuperResolutionAdapter()


def register_inference_adapter(adapter: InferenceAdapter) -> InferenceAdapter:
    """Add a line's adapter; it is asked before the plain SR path, in registration order."""
    if all(type(a) is not type(adapter) for a in _ADAPTERS):
        _ADAPTERS.append(adapter)
    return adapter


def inference_adapters() -> List[InferenceAdapter]:
    """Every adapter, the lines' first, the plain SR path last."""
    return _ADAPTERS + [_DEFAULT]


def adapter_for(net: nn.Module, channels: Optional[int], args: argparse.Namespace, where: str) -> InferenceAdapter:
    """The adapter that runs ``net``; ``OptionsError`` for flags of another adapter, or a network none runs."""
    chosen = next((a for a in inference_adapters() if a.accepts(net, channels)), None)
    for adapter in inference_adapters():
        if adapter is not chosen and adapter.given(args):
            raise OptionsError(adapter.refuse_flags(net, channels, where))
    if chosen is None:
        raise OptionsError(f'{where}: network_g takes {channels} input channels; infer supports 1 (Y) or 3')
    return chosen
