"""CRNN recognizer (Shi, Bai, Yao, TPAMI 2017) as TextZoom evaluates with it: CRNN(imgH=32, nc=1, nclass=37, nh=256).

Seven convolutions (64-128-256-256-512-512-512, BN after the 3rd, 5th and 7th, four max-poolings, the last
two 2x1) turn a 32x100 grayscale image into 26 columns of 512 features; two bidirectional LSTMs (256 hidden,
each followed by a linear layer) give ``(26, N, 37)`` CTC scores. The module names follow crnn.pytorch
(``cnn.conv0`` ... ``rnn.1.embedding``) so its published ``crnn.pth`` loads by path without renaming.
8,331,301 parameters (pinned in tests/test_textsr.py).

``load_recognizer`` loads a checkpoint with ``strict=False`` and reports missing/unexpected keys (the seed
loads a whole joint model's checkpoint once into the full model); a tensor of the wrong shape is an error that
names the file and keys. ``set_trainable`` freezes the recognizer, or all of it but the classification head.
"""
import logging
from typing import Dict, List, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from basicsr.utils.registry import ARCH_REGISTRY

from ..engine.basicsr.networks import read_state_dict
from ..engine.errors import OptionsError
from .labels import NUM_CLASSES

INPUT_SIZE = (32, 100)  # (H, W) of crnn.pytorch's input
HEAD_PREFIX = 'rnn.1.embedding.'  # the classification head: the last linear layer (2 * nh -> classes)


class BidirectionalLSTM(nn.Module):
    """``(T, N, in)`` -> BiLSTM -> linear -> ``(T, N, out)`` (time first)."""

    def __init__(self, in_ch: int, hidden: int, out_ch: int):
        super().__init__()
        self.rnn = nn.LSTM(in_ch, hidden, bidirectional=True)
        self.embedding = nn.Linear(hidden * 2, out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embedding(self.rnn(x)[0])


INPUT_NORMS = ('textzoom', 'crnn.pytorch')


def to_recognizer_input(img: torch.Tensor, norm: str = 'textzoom') -> torch.Tensor:
    """RGB(+mask) or gray ``(N, C, H, W)`` in [0, 1] -> gray ``(N, 1, 32, 100)``, the CRNN's input.

    Gray = 0.299 R + 0.587 G + 0.114 B after a bicubic resize to 32x100 (``align_corners=False``), as TextZoom's
    ``parse_crnn_data``; a 4th (mask) channel is ignored. ``norm``:

    * ``'textzoom'``: left in [0, 1] and not clamped (TSRN's tanh output may leave it), which is how TextZoom's
      evaluation feeds crnn.pytorch's CRNN -- although crnn.pytorch trained it on [-1, 1] inputs (its
      ``resizeNormalize``: ``sub_(0.5).div_(0.5)``). TextZoom's CRNN accuracies were measured this way.
    * ``'crnn.pytorch'``: clamped to [0, 1] and mapped to [-1, 1], the recognizer's own normalisation.
    """
    if norm not in INPUT_NORMS:
        raise ValueError(f'recognizer input_norm must be one of {list(INPUT_NORMS)}, got {norm!r}')
    if img.shape[1] >= 3:
        r, g, b = img[:, 0:1], img[:, 1:2], img[:, 2:3]
        img = 0.299 * r + 0.587 * g + 0.114 * b
    elif img.shape[1] != 1:
        raise ValueError(f'recognizer input must have 1, 3 or 4 channels, got {img.shape[1]}')
    if tuple(img.shape[-2:]) != INPUT_SIZE:
        img = F.interpolate(img, INPUT_SIZE, mode='bicubic', align_corners=False)
    return img if norm == 'textzoom' else img.clamp(0, 1) * 2 - 1


@ARCH_REGISTRY.register()
class CRNN(nn.Module):
    """CRNN with 37 CTC classes (blank + ``0-9a-z``).

    Args:
        num_classes (int): CTC classes including the blank. Default: 37.
        hidden (int): LSTM hidden units (``nh``). Default: 256.
        input_norm (str): how an image is fed (:func:`to_recognizer_input`): ``'textzoom'`` ([0, 1], as TextZoom's
            evaluation feeds crnn.pytorch's weights) or ``'crnn.pytorch'`` ([-1, 1], as those weights were
            trained). Default: 'textzoom'.

    Shapes:
        ``forward``: ``(N, C, H, W)`` image in [0, 1] (C = 1, 3 or 4; resized to 32x100) -> ``(26, N, classes)``.
        ``features``: same input -> ``(26, N, 512)`` column features; ``sequence_head``: ``(T, N, 512)`` ->
        ``(T, N, classes)`` (the two BiLSTMs, used by the feature-level bridges).
    """

    def __init__(self, num_classes: int = NUM_CLASSES, hidden: int = 256, input_norm: str = 'textzoom'):
        super().__init__()
        if input_norm not in INPUT_NORMS:
            raise ValueError(f'CRNN input_norm must be one of {list(INPUT_NORMS)}, got {input_norm!r}')
        self.input_norm = input_norm
        chans = [1, 64, 128, 256, 256, 512, 512, 512]
        pools = {0: nn.MaxPool2d(2, 2), 1: nn.MaxPool2d(2, 2), 3: nn.MaxPool2d((2, 2), (2, 1), (0, 1)),
                 5: nn.MaxPool2d((2, 2), (2, 1), (0, 1))}
        self.cnn = nn.Sequential()
        for i in range(7):
            k, p = (2, 0) if i == 6 else (3, 1)
            self.cnn.add_module(f'conv{i}', nn.Conv2d(chans[i], chans[i + 1], k, 1, p))
            if i in (2, 4, 6):
                self.cnn.add_module(f'batchnorm{i}', nn.BatchNorm2d(chans[i + 1]))
            self.cnn.add_module(f'relu{i}', nn.ReLU(True))
            if i in pools:
                self.cnn.add_module(f'pooling{sorted(pools).index(i)}', pools[i])
        self.rnn = nn.Sequential(BidirectionalLSTM(512, hidden, hidden), BidirectionalLSTM(hidden, hidden, num_classes))
        self.num_classes = num_classes

    def features(self, img: torch.Tensor) -> torch.Tensor:
        conv = self.cnn(to_recognizer_input(img, self.input_norm))  # (N, 512, 1, 26)
        return conv.squeeze(2).permute(2, 0, 1)  # (26, N, 512)

    def sequence_head(self, seq: torch.Tensor) -> torch.Tensor:
        return self.rnn(seq)

    def forward(self, img: torch.Tensor = None, seq: torch.Tensor = None) -> torch.Tensor:
        """Scores of an image, or of column features ``seq`` from a bridge (one entry point, so that a
        DistributedDataParallel wrapper sees both uses)."""
        if (img is None) == (seq is None):
            raise ValueError('CRNN.forward takes exactly one of img or seq')
        return self.sequence_head(self.features(img) if seq is None else seq)


def load_recognizer(net: nn.Module, ckpt_path: str, param_key: str = 'auto', prefix: str = '',
                    ignore_keys: Sequence[str] = (), logger: logging.Logger = None) -> Dict[str, List[str]]:
    """Load a recognizer checkpoint into ``net`` non-strictly and report what did not load.

    Args:
        net: the recognizer (or a model that contains it under ``prefix``).
        ckpt_path: a bare state dict (crnn.pytorch's ``crnn.pth``), or a BasicSR checkpoint (``params``).
        param_key: as :func:`plugins.engine.basicsr.networks.read_state_dict`. Default: 'auto'.
        prefix: keep only checkpoint keys starting with it, stripped (e.g. 'recognizer.' to take the recognizer
            out of a joint model's checkpoint). Default: '' (all keys).
        ignore_keys: key prefixes (after stripping ``prefix``) not to load, e.g. ``['rnn.1.embedding']`` to start
            the classification head from scratch when it has another number of classes.

    Returns:
        ``{'missing': [...], 'unexpected': [...], 'ignored': [...]}`` (also logged).

    Raises:
        OptionsError: a tensor of the checkpoint does not have the shape of the network's, or nothing matched.
    """
    state, _ = read_state_dict(ckpt_path, param_key)
    if prefix:
        state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    ignored = [k for k in state if any(k.startswith(p) for p in ignore_keys)]
    state = {k: v for k, v in state.items() if k not in ignored}
    own = net.state_dict()
    wrong = [f'{k}: checkpoint {tuple(v.shape)} vs network {tuple(own[k].shape)}' for k, v in state.items()
             if k in own and tuple(v.shape) != tuple(own[k].shape)]
    if wrong:
        raise OptionsError(f'recognizer checkpoint {ckpt_path} does not fit {type(net).__name__}: shape mismatch '
                           + '; '.join(wrong[:4]) + (f' (and {len(wrong) - 4} more)' if len(wrong) > 4 else '')
                           + '. Use ignore_keys to leave such layers (e.g. the classification head '
                           f'{HEAD_PREFIX[:-1]!r}) at their initial values.')
    if not any(k in own for k in state):
        raise OptionsError(f'recognizer checkpoint {ckpt_path}: none of its {len(state)} keys (prefix {prefix!r}) '
                           f'is a parameter of {type(net).__name__}; first keys: {list(state)[:3]}')
    result = net.load_state_dict(state, strict=False)
    report = {'missing': list(result.missing_keys), 'unexpected': list(result.unexpected_keys), 'ignored': ignored}
    (logger or logging.getLogger('basicsr')).info(
        f'Loaded recognizer {ckpt_path} (strict=False): {len(state) - len(report["unexpected"])} tensors; '
        f'missing {report["missing"] or "none"}; unexpected {report["unexpected"] or "none"}; '
        f'ignored {ignored or "none"}')
    return report


def set_trainable(net: nn.Module, part: str) -> None:
    """``part``: 'all' (fine-tune everything), 'head' (only ``rnn.1.embedding``, the seed's retrained
    classification head), or 'none' (frozen; BN kept in eval mode by the caller)."""
    if part not in ('all', 'head', 'none'):
        raise ValueError(f"recognizer trainable part must be 'all', 'head' or 'none', got {part!r}")
    for name, p in net.named_parameters():
        p.requires_grad_(part == 'all' or (part == 'head' and name.startswith(HEAD_PREFIX)))
