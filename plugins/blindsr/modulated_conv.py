"""CMDSR's building blocks: the equalised-learning-rate linear layer, the modulated convolution and the bank of
per-convolution modulations that turns one condition vector per task into per-channel weight scales.

Reference: Yin et al., "Conditional Hyper-Network for Blind Super-Resolution With Multiple Degradations" (TIP 2022,
arXiv 2104.03926), official code ``guanghaoyin/CMDSR`` ``models/CMDSR.py`` (``EqualLinear``, ``BaseConv2d``,
``Modulations``). Written anew here; where we differ from the official code the comment next to it says why.
"""
import math
from typing import List, Sequence

import torch
from torch import nn
from torch.nn import functional as F


class EqualLinear(nn.Module):
    """Linear layer with StyleGAN2's equalised learning rate: ``y = x W^T * (lr_mul / sqrt(in)) + b * lr_mul``.

    ``W`` starts as N(0, 1) / lr_mul and ``b`` as ``bias_init``; with ``bias_init=1`` the output of a modulation
    starts close to 1 (an identity modulation) for a small condition vector.

    Args:
        in_dim (int): Input features.
        out_dim (int): Output features.
        bias_init (float): Initial value of every bias. Default: 0.
        lr_mul (float): Learning-rate multiplier of the equalised parameterisation. Default: 1.

    Shapes:
        input ``(N, in_dim)`` or ``(N, in_dim, 1, 1)``; output ``(N, out_dim)``.
    """

    def __init__(self, in_dim: int, out_dim: int, bias_init: float = 0., lr_mul: float = 1.):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim).div_(lr_mul))
        self.bias = nn.Parameter(torch.full((out_dim, ), float(bias_init)))
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x.reshape(x.shape[0], -1), self.weight * self.scale, self.bias * self.lr_mul)

    def extra_repr(self) -> str:
        return f'{self.weight.shape[1]}, {self.weight.shape[0]}, lr_mul={self.lr_mul}'


class InputScaledConv2d(torch.autograd.Function):
    """``F.conv2d(x * scale[:, :, None, None], weight, bias, stride, padding, dilation)`` whose backward recomputes
    the scaled input from ``x`` and ``scale`` instead of keeping it.

    Plain autograd would keep both ``x`` (for the scale's gradient) and its scaled copy (for the weight's): one more
    activation per modulated convolution, which at the paper's size is more than the grouped form's per-sample
    weights (90 vs 23 MiB per convolution) and in the RRDB BaseNet doubles the dense blocks' activations. Under
    autocast the convolution runs in the output's dtype, and so does its backward here.

    Shapes: x ``(B, in, H, W)``, scale ``(B, in)``, weight ``(out, in, k, k)``, bias ``(out,)`` or None.
    """

    @staticmethod
    def forward(ctx, x, scale, weight, bias, stride, padding, dilation):
        ctx.save_for_backward(x, scale, weight)
        ctx.conv = (stride, padding, dilation)
        ctx.bias_dtype = None if bias is None else bias.dtype
        return F.conv2d(x * scale[:, :, None, None], weight, bias, stride, padding, dilation)

    @staticmethod
    def backward(ctx, grad_out):
        x, scale, weight = ctx.saved_tensors
        stride, padding, dilation = ctx.conv
        need_x, need_scale, need_weight, need_bias = ctx.needs_input_grad[:4]
        scaled = x * scale[:, :, None, None]
        dtype = grad_out.dtype  # the dtype F.conv2d ran in (autocast casts its inputs to it)
        grad_in, grad_weight, grad_bias = torch.ops.aten.convolution_backward(
            grad_out, scaled.to(dtype), weight.to(dtype), None if ctx.bias_dtype is None else [weight.shape[0]],
            list(stride), list(padding), list(dilation), False, [0, 0], 1,
            [need_x or need_scale, need_weight, need_bias and ctx.bias_dtype is not None])
        grad_x = grad_scale = None
        if grad_in is not None:
            grad_in = grad_in.to(scaled.dtype)
            grad_x = (grad_in * scale[:, :, None, None]).to(x.dtype) if need_x else None
            grad_scale = (grad_in * x).sum(dim=(2, 3)).to(scale.dtype) if need_scale else None
        grad_weight = None if grad_weight is None else grad_weight.to(weight.dtype)
        grad_bias = None if grad_bias is None else grad_bias.to(ctx.bias_dtype)
        return grad_x, grad_scale, grad_weight, grad_bias, None, None, None


class ModulatedConv2d(nn.Conv2d):
    """A 2-D convolution whose weights can be scaled per sample and per input channel (CMDSR's ``BaseConv2d``).

    With a modulation ``m`` of shape ``(B, in_channels)`` sample ``b`` is convolved with
    ``W_b[o, i] = W[o, i] * m[b, i]``. A convolution is linear in each input channel, so this equals scaling the
    input, ``conv(x * m[:, :, None, None], W) + bias`` (zero padding stays zero; the bias is not modulated), and
    that is how it runs: one dense convolution over the batch (``InputScaledConv2d``, which recomputes the scaled
    input in the backward pass rather than keep it). There is no demodulation, as in the official code.

    The official ``BaseConv2d`` builds the ``B`` modulated weights and runs one grouped convolution
    (``groups = B``): ``B`` copies of the weights per convolution (160 x 144 KiB for 64 -> 64 channels at the
    paper's size) and a grouped kernel instead of a dense one (StyleGAN2-ADA likewise fuses the modulation into
    the weights only for inference). It also reshapes them with
    ``view(b * in, out, k, k)``, right only because its convolutions have ``in == out``, and repeats the bias with
    ``repeat_interleave(bias, b)``, which scrambles a trained bias across channels; the input scaling here has
    neither problem. ``tests/blindsr/test_archs.py`` pins the outputs and gradients to a grouped convolution.

    Being an ``nn.Conv2d`` it keeps the usual ``weight``/``bias`` keys, so plain checkpoints load into it and
    BasicSR's ``default_init_weights`` applies.

    Args:
        in_channels, out_channels, kernel_size, stride, padding, bias: as ``nn.Conv2d``.
        equalized (bool): StyleGAN2/CMDSR equalised learning rate: ``weight`` ~ N(0, 1), bias 0, and the
            weight is multiplied by ``1 / sqrt(in * k * k)`` at run time (the official ``BaseConv2d``).
            False: a plain ``nn.Conv2d`` parameterisation (used by the RRDB BaseNet, for Real-ESRGAN weights).
        official_bias (bool): Reproduce the official bias bug of the modulated path (``official_bias_map``):
            with B images the official code adds ``repeat_interleave(bias, B)`` to its grouped convolution's
            ``B * out`` channels, so image ``b`` channel ``o`` gets ``bias[(b * out + o) // B]``, not ``bias[o]``.
            Equal to ours for B = 1 (one test image) or equal biases; differs once a trained bias meets a batch.
            Default: False (our fix: ``bias[o]`` for every image). Only for converted official weights.

    Shapes:
        x ``(B, in, H, W)``; modulation ``(B, in)`` or None (plain convolution); output ``(B, out, H', W')``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 bias: bool = True, equalized: bool = False, official_bias: bool = False):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=bias)
        self.equalized = bool(equalized)
        self.official_bias = bool(official_bias)
        self.weight_scale = 1.0
        if self.equalized:
            self.weight_scale = 1 / math.sqrt(in_channels * self.kernel_size[0] * self.kernel_size[1])
            with torch.no_grad():
                self.weight.normal_()
                if self.bias is not None:
                    self.bias.zero_()

    def forward(self, x: torch.Tensor, modulation: torch.Tensor = None) -> torch.Tensor:
        weight = self.weight * self.weight_scale if self.equalized else self.weight
        if modulation is None:
            return self._conv_forward(x, weight, self.bias)
        b, c = x.shape[:2]
        if c != self.in_channels:
            raise ValueError(f'{type(self).__name__}: input has {c} channels, the convolution takes {self.in_channels}')
        if tuple(modulation.shape) != (b, c):
            raise ValueError(f'{type(self).__name__}: modulation must be (batch {b}, in_channels {c}), '
                             f'got {tuple(modulation.shape)}')
        bias = None if self.official_bias else self.bias
        if torch.is_grad_enabled():
            out = InputScaledConv2d.apply(x, modulation, weight, bias, self.stride, self.padding, self.dilation)
        else:  # no backward to save memory for: the plain form, which tracers and exporters can record
            out = F.conv2d(x * modulation[:, :, None, None], weight, bias, self.stride, self.padding, self.dilation)
        if self.official_bias and self.bias is not None:
            out = out + official_bias_map(self.bias, b)[:, :, None, None].to(out.dtype)
        return out

    def extra_repr(self) -> str:
        return super().extra_repr() + f', equalized={self.equalized}' + (
            ', official_bias=True' if self.official_bias else '')


def official_bias_map(bias: torch.Tensor, batch: int) -> torch.Tensor:
    """The bias the official ``BaseConv2d`` adds in its modulated path, per image: ``(batch, out)``.

    It runs one grouped convolution whose ``batch * out`` output channels are image-major (channel ``b * out + o``
    is image ``b``'s channel ``o``) and gives it ``torch.repeat_interleave(bias, batch)``, which is channel-major
    (entry ``j`` is ``bias[j // batch]``). So image ``b`` channel ``o`` gets ``bias[(b * out + o) // batch]``:
    the right bias only for ``batch == 1``. Shapes: bias ``(out,)`` -> ``(batch, out)``.
    """
    return torch.repeat_interleave(bias, batch).reshape(batch, bias.shape[0])


class Modulations(nn.Module):
    """One ``EqualLinear(cond_dim -> channels_i, bias_init=1)`` per modulated convolution.

    Args:
        channels (Sequence[int]): Input channels of each modulated convolution, in the order the network uses them
            (20 x 64 for CMDSR's BaseNet: 20 x (128 * 64 + 64) = 165,120 parameters).
        cond_dim (int): Length of the condition vector. Default: 128 (ConditionNet's VGG conv2_2 features).

    Shapes:
        condition ``(T, cond_dim)`` or ``(T, cond_dim, 1, 1)``, one vector per task; ``images_per_task``
        repeats every task's scales for the ``B = T * images_per_task`` images of the batch, grouped by task
        (images ``[t * n, (t + 1) * n)`` belong to task ``t``). Returns a list of ``(B, channels_i)`` tensors.
    """

    def __init__(self, channels: Sequence[int], cond_dim: int = 128):
        super().__init__()
        self.channels = [int(c) for c in channels]
        self.cond_dim = int(cond_dim)
        self.linears = nn.ModuleList(EqualLinear(self.cond_dim, c, bias_init=1) for c in self.channels)

    def forward(self, condition: torch.Tensor, images_per_task: int = 1) -> List[torch.Tensor]:
        condition = condition.reshape(condition.shape[0], -1)
        if condition.shape[1] != self.cond_dim:
            raise ValueError(f'condition vectors must have {self.cond_dim} features, got {condition.shape[1]}')
        return [torch.repeat_interleave(lin(condition), images_per_task, dim=0) for lin in self.linears]


def images_per_task(batch: int, tasks: int) -> int:
    """How many images of a task-grouped batch of ``batch`` images belong to each of ``tasks`` tasks."""
    if tasks < 1 or batch % tasks:
        raise ValueError(f'a batch of {batch} LR images cannot be split evenly over {tasks} condition vectors '
                         '(tasks); the batch must be grouped by task with the same number of images per task')
    return batch // tasks
