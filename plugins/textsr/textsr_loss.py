"""Losses of the text SR line, registered in BasicSR's ``LOSS_REGISTRY``, and the multi-task weighting.

* ``TSRNImageLoss``: TextZoom's ``ImageLoss(gradient=True)``: MSE on all channels (RGB + mask) plus
  ``gradient_weight`` x the gradient-profile prior (L1 between gradient-magnitude maps of the RGB channels).
* ``TextCTCLoss``: CTC on recognizer scores against filtered labels (see ``labels.py``), reduced as PyTorch
  (``mean``: per target length, then over the batch) or as crnn.pytorch (``batchmean``: sum / batch size).
* ``TaskWeighting``: plain average of the task losses, or Kendall et al.'s homoscedastic uncertainty
  weighting with learned ``s_i = log sigma_i^2`` (CVPR 2018, eq. 10: ``0.5 exp(-s) L + 0.5 s`` for the SR
  regression term, ``exp(-s) L + 0.5 s`` for recognition; ``form: symmetric`` gives ``exp(-s) L + s`` for both).

Under mixed precision (``train: amp``) the CTC loss runs in float32 (``full_precision``): its log-probabilities
summed over all alignments need float32's precision and range.
"""
from typing import Dict, Sequence

import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F

from basicsr.utils.registry import LOSS_REGISTRY

from ..engine.basicsr.mixed_precision import full_precision, wide
from .labels import encode_labels


def gradient_magnitude(x: torch.Tensor) -> torch.Tensor:
    """``sqrt(((right - left) / 2)^2 + ((below - above) / 2)^2 + 1e-6)`` per pixel, zero padding: ``(N, C, H, W)``."""
    padded = F.pad(x, (1, 1, 1, 1))
    dx = (padded[..., 1:-1, 2:] - padded[..., 1:-1, :-2]) * 0.5
    dy = (padded[..., 2:, 1:-1] - padded[..., :-2, 1:-1]) * 0.5
    return torch.sqrt(dx * dx + dy * dy + 1e-6)


@LOSS_REGISTRY.register()
class TSRNImageLoss(nn.Module):
    """``loss_weight * (MSE(sr, hr) + gradient_weight * L1(grad(sr[:, :3]), grad(hr[:, :3])))``.

    Args:
        loss_weight (float): Overall weight. TextZoom multiplies its loss by 100 in the training loop. Default: 1.
        gradient_weight (float): Weight of the gradient-profile prior (TextZoom: 1e-4). Default: 1e-4.

    Inputs ``(N, C, H, W)``: the SR output (tanh range) and the HR target in [0, 1]; C = 3 or 4.
    """

    def __init__(self, loss_weight: float = 1.0, gradient_weight: float = 1e-4):
        super().__init__()
        self.loss_weight, self.gradient_weight = loss_weight, gradient_weight

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        loss = F.mse_loss(sr, hr)
        if self.gradient_weight:
            loss = loss + self.gradient_weight * F.l1_loss(gradient_magnitude(sr[:, :3]), gradient_magnitude(hr[:, :3]))
        return self.loss_weight * loss


CTC_REDUCTIONS = ('mean', 'batchmean')


@LOSS_REGISTRY.register()
class TextCTCLoss(nn.Module):
    """CTC loss (blank 0, zero_infinity) of recognizer scores against filtered labels.

    ``forward(scores (T, N, classes), labels: list of N strings)``; labels are filtered as TextZoom does.

    Args:
        loss_weight (float): Weight. Default: 1.
        reduction (str): ``'mean'``: each sample's loss divided by its target length, then the batch mean
            (PyTorch's ``CTCLoss`` default; a long word weighs as much as a short one). ``'batchmean'``: the sum of
            the per-sample losses divided by the batch size, as crnn.pytorch (warp-ctc's summed loss ``/
            batch_size``); its gradients are about the mean label length (~5-6 on TextZoom) times larger.
            Default: 'mean'.
    """

    def __init__(self, loss_weight: float = 1.0, reduction: str = 'mean'):
        super().__init__()
        if reduction not in CTC_REDUCTIONS:
            raise ValueError(f'TextCTCLoss reduction must be one of {list(CTC_REDUCTIONS)}, got {reduction!r}')
        self.loss_weight, self.reduction = loss_weight, reduction
        self.ctc = nn.CTCLoss(blank=0, reduction='mean' if reduction == 'mean' else 'sum', zero_infinity=True)

    def forward(self, scores: torch.Tensor, labels: Sequence[str]) -> torch.Tensor:
        targets, target_lengths = encode_labels(labels)
        input_lengths = torch.full((scores.shape[1], ), scores.shape[0], dtype=torch.long)
        with full_precision(scores.device.type):
            log_probs = wide(scores).log_softmax(-1)
            loss = self.ctc(log_probs, targets, input_lengths, target_lengths)
            if self.reduction == 'batchmean':
                loss = loss / scores.shape[1]
            return self.loss_weight * loss


UNCERTAINTY_FORMS = ('kendall', 'symmetric')


class TaskWeighting(nn.Module):
    """Combine task losses by ``'average'`` or by learned ``'uncertainty'`` (Kendall, Gal & Cipolla, CVPR 2018).

    Args:
        mode (str): 'average' (``sum_i L_i / n``) or 'uncertainty'.
        tasks (Sequence[str]): Task names, in the order of the ``losses`` dict given to ``forward``.
        init (float): Initial ``s_i`` (0: sigma = 1). Default: 0.
        form (str): the uncertainty loss, with ``s_i = log sigma_i^2`` learned:

            * ``'kendall'``: the paper's eq. 10, ``1/(2 sigma^2) L + log sigma`` for a regression task and
              ``1/sigma^2 L + log sigma`` for a classification task, i.e. ``0.5 exp(-s) L + 0.5 s`` and
              ``exp(-s) L + 0.5 s``. At the optimum ``s`` both tasks get the weight ``1 / (2 L)``.
            * ``'symmetric'``: ``exp(-s) L + s`` for every task (this package's first form; the common "stable"
              form without Kendall's 1/2 on the regression term): both get ``1 / L`` at the optimum.

            Default: 'kendall'.
        regression (Sequence[str]): the regression tasks (Gaussian likelihood). Default: ('sr', ).

    ``s`` (``log_vars``) is a parameter to optimise with the networks; in 'average' mode there is none.
    """

    def __init__(self, mode: str, tasks: Sequence[str], init: float = 0.0, form: str = 'kendall',
                 regression: Sequence[str] = ('sr', )):
        super().__init__()
        if mode not in ('average', 'uncertainty'):
            raise ValueError(f"loss weighting must be 'average' or 'uncertainty', got {mode!r}")
        if form not in UNCERTAINTY_FORMS:
            raise ValueError(f'uncertainty form must be one of {list(UNCERTAINTY_FORMS)}, got {form!r}')
        self.mode, self.tasks, self.form, self.regression = mode, list(tasks), form, set(regression)
        if mode == 'uncertainty':
            self.log_vars = nn.Parameter(torch.full((len(self.tasks), ), float(init)))

    def factors(self, task: str):
        """``(a, b)`` of the task's term ``a exp(-s) L + b s``."""
        if self.form == 'symmetric':
            return 1.0, 1.0
        return (0.5, 0.5) if task in self.regression else (1.0, 0.5)

    def forward(self, losses: Dict[str, torch.Tensor]) -> torch.Tensor:
        present = [t for t in self.tasks if t in losses]
        if not present:
            raise ValueError(f'no task loss among {self.tasks}; got {list(losses)}')
        if self.mode == 'average':
            return sum(losses[t] for t in present) / len(present)
        total = 0
        for t in present:
            s = self.log_vars[self.tasks.index(t)]
            a, b = self.factors(t)
            total = total + a * torch.exp(-s) * losses[t] + b * s
        return total

    def average_gradients_across_ranks(self) -> None:
        """Under a distributed launcher, replace the gradient of ``s`` by its mean over the ranks (what DDP does
        for the networks; this module is not DDP-wrapped, so without it each rank would learn its own ``s``).
        Nothing to do in 'average' mode, before the first backward, or in a single process."""
        if self.mode != 'uncertainty' or self.log_vars.grad is None:
            return
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return
        dist.all_reduce(self.log_vars.grad)
        self.log_vars.grad /= dist.get_world_size()

    def weight_factors(self) -> torch.Tensor:
        """``(tasks,)`` the factor on each task's loss: 1/n (average) or ``a exp(-s_i)`` (uncertainty), detached."""
        if self.mode == 'average':
            return torch.full((len(self.tasks), ), 1.0 / len(self.tasks))
        a = torch.tensor([self.factors(t)[0] for t in self.tasks], dtype=self.log_vars.dtype,
                         device=self.log_vars.device)
        return a * torch.exp(-self.log_vars.detach())

    def weights(self) -> Dict[str, float]:
        """Current factor on each task's loss: 1/n (average) or ``a exp(-s_i)`` (uncertainty; a = 1/2 for a
        regression task in the 'kendall' form)."""
        return {t: float(w) for t, w in zip(self.tasks, self.weight_factors())}
