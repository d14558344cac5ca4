"""How ``tools/infer.py`` runs a network on images without ground truth: the plain super-resolution path, and the
adapters that research lines register for networks that need more than an image.

``tools/infer.py`` names no line. It builds its command line from every registered adapter's flags, picks the first
adapter that accepts the network (adapters that recognise their networks by class first, then those that go by the
number of input channels, the plain path last), refuses the flags of the adapters it did not pick with their own
message, runs the chosen one on each image, and lets it write what it gathered over all images (``finish``). A line
adds an adapter by subclassing ``InferenceAdapter`` in its ``inference.py`` and calling
``register_inference_adapter`` at import. The BasicSR lines' adapters register with ``import plugins``; an mmengine
line's (inpainting) registers when its config's ``custom_imports`` import the line.

For mmengine configs an adapter may also build the config's model itself (``builds_config`` /
``build_from_config``: PD-GAN takes its prior's weights from the checkpoint) and give the module that
``tools/benchmark.py`` times (``timed_network``).
"""
import argparse
from typing import Callable, List, Optional, Tuple

import numpy as np
import torch
from torch import nn

from ..engine.errors import OptionsError

# One image in (BGR uint8 (H, W, 3)), named outputs out: [(suffix added to the file stem, BGR uint8 image), ...].
ImageRunner = Callable[[np.ndarray], List[Tuple[str, np.ndarray]]]


class InferenceAdapter:
    """How ``tools/infer.py`` runs one kind of network. Subclasses set ``name`` and ``flags`` (the argparse ``dest``
    of their own options) and override the methods below."""

    name = 'network'
    flags: Tuple[str, ...] = ()
    # True: ``accepts`` recognises the network by its class; such adapters are asked before those that go by the
    # number of input channels (a 4-channel TSRN or inpainting generator is not a low-light network).
    specific = False

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

    def start_file(self, path: str) -> None:
        """Called by ``tools/infer.py`` before the runner runs the image read from ``path`` (adapters that match
        other files to the input, or tabulate per file, keep it). Default: nothing."""

    def finish(self, out_dir: str) -> List[str]:
        """Called once after the last image: write what the runner gathered over all images into ``out_dir`` and
        return the lines to print. Default: nothing."""
        return []

    def builds_config(self, cfg) -> bool:
        """Whether this adapter builds the model of the mmengine config ``cfg`` itself (``build_from_config``)."""
        return False

    def build_from_config(self, config: str, checkpoint: str) -> nn.Module:
        """The model of ``config`` with the weights of ``checkpoint``, in eval mode on the CPU (``OptionsError`` for
        a checkpoint that does not fit)."""
        raise NotImplementedError

    def timed_network(self, net: nn.Module, where: str) -> Optional[Tuple[nn.Module, str]]:
        """For ``tools/benchmark.py``: a one-input module that runs what this adapter's inference runs, and its
        default input size ('NxCxHxW'), for a ``net`` (the model of the config ``where``) that is not a plain
        one-input network; None for the networks this adapter does not run."""
        return None


class SuperResolutionAdapter(InferenceAdapter):
    """Plain SR networks of 1 (Y, with bicubic Cb/Cr) or 3 (RGB) input channels, whole or in tiles
    (``common/tiled_inference.py``), with channels-last inputs under ``--channels-last``."""

    name = 'super-resolution'

    def accepts(self, net: nn.Module, channels: Optional[int]) -> bool:
        return channels in (1, 3)

    def prepare(self, net, channels, args, scale, where, device) -> ImageRunner:
        from .tiled_inference import super_resolve  # BasicSR's colour helpers: not imported by the MMagic lines
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
    """Every adapter in the order they are asked: the lines' adapters that recognise networks by class, then the
    lines' other adapters (each group in registration order), the plain SR path last."""
    return [a for a in _ADAPTERS if a.specific] + [a for a in _ADAPTERS if not a.specific] + [_DEFAULT]


def build_config_for_inference(cfg, path: str, checkpoint: Optional[str]) -> Tuple[nn.Module, bool]:
    """(the model of the mmengine config ``cfg`` read from ``path``, with ``checkpoint`` loaded; whether a line's
    adapter built it). A line whose models take more than an image builds them itself from the checkpoint
    (inpainting: its adapter's ``build_from_config``); any other model, or one without a checkpoint (random weights,
    for timing), is ``build_config_model``'s."""
    from ..engine.mmengine.config_model import build_config_model
    builder = next((a for a in inference_adapters() if a.builds_config(cfg)), None)
    if checkpoint and builder is not None:
        return builder.build_from_config(path, checkpoint), True
    return build_config_model(cfg, path, checkpoint), False


def adapter_for(net: nn.Module, channels: Optional[int], args: argparse.Namespace, where: str) -> InferenceAdapter:
    """The adapter that runs ``net``; ``OptionsError`` for flags of another adapter, or a network none runs."""
    chosen = next((a for a in inference_adapters() if a.accepts(net, channels)), None)
    for adapter in inference_adapters():
        if adapter is not chosen and adapter.given(args):
            raise OptionsError(adapter.refuse_flags(net, channels, where))
    if chosen is None:
        raise OptionsError(f'{where}: network_g takes {channels} input channels; infer supports 1 (Y) or 3')
    return chosen
