"""CMDSR's task contrastive loss on condition vectors, registered in BasicSR's ``LOSS_REGISTRY``.

Under mixed precision (``train: amp``) the distances and their softplus are computed in float32
(``full_precision``): a squared distance overflows float16 above 65504, and bfloat16's 8-bit mantissa blurs the
small differences between intra- and cross-task distances that the loss acts on."""
import torch
from torch import nn
from torch.nn import functional as F

from basicsr.utils.registry import LOSS_REGISTRY

from ..engine.basicsr.mixed_precision import full_precision, wide


def derangement(n: int, generator: torch.Generator = None, device=None) -> torch.Tensor:
    """A random permutation of ``range(n)`` with no fixed point (every task is paired with another task).

    Sattolo's algorithm draws a uniformly random n-cycle, which never maps an index to itself (the official
    ``shuffle_unrepeat`` retries random choices to the same end).
    """
    if n < 2:
        raise ValueError(f'the task contrastive loss needs at least 2 tasks to pair different tasks, got {n}')
    perm = list(range(n))
    for i in range(n - 1, 0, -1):
        j = int(torch.randint(0, i, (1, ), generator=generator))
        perm[i], perm[j] = perm[j], perm[i]
    return torch.tensor(perm, device=device)


@LOSS_REGISTRY.register()
class TaskContrastiveLoss(nn.Module):
    """Intra-task distances small, cross-task distances large, between two condition vectors per task.

    The support set of each task is split into two halves, giving ConditionNet outputs ``f1`` and ``f2`` of shape
    ``(T, D, 1, 1)``. With ``d_in = dist(f1[t], f2[t])`` and ``d_x = dist(f1[t], f2[p(t)])`` for a random
    derangement ``p`` of the tasks::

        loss = loss_weight * mean(softplus(d_in ** 2) + softplus(-d_x ** 2))

    (``log(1 + exp(d^2))`` and ``log(1 + exp(-d^2))`` of the official code, as softplus for numerical safety).

    Distance (``per_channel``):
        False (default): the Euclidean distance between the D-dimensional condition vectors, as the paper
            describes it.
        True: the official code's behaviour. It calls ``F.pairwise_distance`` on ``(T, D, 1, 1)`` tensors, which
            takes the norm over the LAST axis (size 1), so each "distance" is ``|f1 - f2 + eps|`` of one channel
            and the loss averages D per-channel terms. Kept for reproducing the official training.

    Args:
        loss_weight (float): Multiplier of the loss. Default: 1.
        per_channel (bool): Official per-channel distances. Default: False.
        eps (float): Added to the difference, as ``F.pairwise_distance``. Default: 1e-6.

    Forward:
        f1, f2: ``(T, D)`` or ``(T, D, 1, 1)`` condition vectors of the two halves, T >= 2 tasks.
        Returns ``(loss, mean intra-task distance, mean cross-task distance)`` (the distances detached).
    """

    def __init__(self, loss_weight: float = 1., per_channel: bool = False, eps: float = 1e-6):
        super().__init__()
        self.loss_weight, self.per_channel, self.eps = float(loss_weight), bool(per_channel), float(eps)

    def distance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """``(T, D)`` distances per channel (``per_channel``), else ``(T, 1)`` vector distances."""
        diff = a - b + self.eps
        return diff.abs() if self.per_channel else diff.norm(dim=1, keepdim=True)

    def forward(self, f1: torch.Tensor, f2: torch.Tensor, perm: torch.Tensor = None):
        if f1.shape != f2.shape:
            raise ValueError(f'TaskContrastiveLoss: the halves have different shapes {tuple(f1.shape)} and '
                             f'{tuple(f2.shape)}')
        f1, f2 = f1.reshape(f1.shape[0], -1), f2.reshape(f2.shape[0], -1)
        if perm is None:
            perm = derangement(f1.shape[0], device=f1.device)
        with full_precision(f1.device.type):
            f1, f2 = wide(f1), wide(f2)
            d_in, d_x = self.distance(f1, f2), self.distance(f1, f2[perm])
            loss = (F.softplus(d_in.pow(2)) + F.softplus(-d_x.pow(2))).mean()
            return self.loss_weight * loss, d_in.detach().mean(), d_x.detach().mean()
