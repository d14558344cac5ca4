"""Labels of TextZoom's recognizers: the 36-symbol alphabet, label filtering, CTC encoding and greedy decoding.

Alphabet: ``0-9a-z`` (TextZoom's ``voc_type='lower'``). CTC class 0 is the blank, class ``i + 1`` is
``ALPHABET[i]``: 37 classes, as CRNN(32, 1, 37, 256) of crnn.pytorch, which TextZoom evaluates with.

Labels outside the alphabet are handled as TextZoom's ``str_filt(label, 'lower')`` does: the label is
lower-cased and every character that is still outside ``0-9a-z`` (punctuation, spaces, accents) is dropped.
``"Don't!"`` becomes ``"dont"``; a label with nothing left becomes ``""`` (an empty target, which CTC accepts
and which only an empty prediction matches).
"""
import string
from typing import List, Sequence, Tuple

import torch

ALPHABET = string.digits + string.ascii_lowercase
NUM_CLASSES = len(ALPHABET) + 1  # + CTC blank at index 0
_INDEX = {c: i + 1 for i, c in enumerate(ALPHABET)}


def filter_label(label: str) -> str:
    """TextZoom's ``str_filt(label, 'lower')``: lower-case, then keep only ``0-9a-z``."""
    return ''.join(c for c in str(label).lower() if c in _INDEX)


def encode_labels(labels: Sequence[str]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Concatenated CTC targets ``(sum of lengths,)`` (long, classes 1..36) and lengths ``(N,)`` of filtered labels."""
    filtered = [filter_label(s) for s in labels]
    targets = torch.tensor([_INDEX[c] for s in filtered for c in s], dtype=torch.long)
    lengths = torch.tensor([len(s) for s in filtered], dtype=torch.long)
    return targets, lengths


def ctc_greedy_decode(logits: torch.Tensor) -> List[str]:
    """Best-path CTC decoding: arg-max per time step, merge repeats, drop blanks.

    Args:
        logits: ``(T, N, NUM_CLASSES)`` scores (logits or log-probabilities), time first as ``nn.CTCLoss``.

    Returns:
        N strings over ``ALPHABET``.
    """
    if logits.dim() != 3 or logits.shape[-1] != NUM_CLASSES:
        raise ValueError(f'expected (T, N, {NUM_CLASSES}) scores, got {tuple(logits.shape)}')
    best = logits.argmax(-1).t().tolist()  # N lists of T class indices
    out = []
    for seq in best:
        chars, prev = [], 0
        for k in seq:
            if k != prev and k != 0:
                chars.append(ALPHABET[k - 1])
            prev = k
        out.append(''.join(chars))
    return out
