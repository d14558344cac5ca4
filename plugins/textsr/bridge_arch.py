"""Feature-level coupling of TSRN and CRNN: bridge heads from SR features to the recognizer's sequence head.

The seed's joint model fine-tunes the recognizer "from the feature layer": the TSRN features before the
upsampler, ``(N, C, h, w)`` (64 x 16 x 64 on TextZoom), become a sequence of ``seq_len`` columns (average
pooling along the width; 26 = CRNN's own sequence length), each column flattened to ``C * h`` values and mapped
by a bridge head to CRNN's 512-d column features; CRNN's two BiLSTMs and classification head then give the CTC
scores. The four heads of the seed's tables -- the seed gives their names only; the layers below are our design:

* ``dense``: one linear layer ``C*h -> 512``;
* ``mlp``: linear ``C*h -> 512``, ReLU, linear ``512 -> 512``;
* ``sidernn``: a side BiLSTM ``C*h -> 2 x 256`` along the columns;
* ``sidernn+mlp``: the side BiLSTM followed by the MLP ``512 -> 512 -> 512``.
"""
import torch
from torch import nn
from torch.nn import functional as F

from basicsr.utils.registry import ARCH_REGISTRY

HEADS = ('dense', 'mlp', 'sidernn', 'sidernn+mlp')


class SideRNN(nn.Module):
    """BiLSTM over the columns: ``(T, N, in)`` -> ``(T, N, 2 * hidden)``."""

    def __init__(self, in_ch: int, hidden: int):
        super().__init__()
        self.rnn = nn.LSTM(in_ch, hidden, bidirectional=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rnn(x)[0]


def _mlp(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_ch, out_ch), nn.ReLU(inplace=True), nn.Linear(out_ch, out_ch))


@ARCH_REGISTRY.register()
class TextBridge(nn.Module):
    """Bridge head from TSRN features to CRNN's sequence features.

    Args:
        head (str): 'dense', 'mlp', 'sidernn' or 'sidernn+mlp'.
        in_ch (int): SR feature channels (TSRN ``num_feat``). Default: 64.
        in_height (int): Height of the SR feature map (the LR height, 16 on TextZoom). Default: 16.
        out_ch (int): Recognizer feature size (CRNN: 512). Default: 512.
        seq_len (int): Columns after pooling along the width (CRNN: 26). Default: 26.

    Shapes: ``(N, in_ch, in_height, w)`` -> ``(seq_len, N, out_ch)`` (time first, as CRNN's BiLSTMs).
    """

    def __init__(self, head: str = 'sidernn', in_ch: int = 64, in_height: int = 16, out_ch: int = 512,
                 seq_len: int = 26):
        super().__init__()
        if head not in HEADS:
            raise ValueError(f'TextBridge head must be one of {list(HEADS)}, got {head!r}')
        self.head_type, self.in_height, self.seq_len = head, in_height, seq_len
        flat = in_ch * in_height
        if head == 'dense':
            self.head = nn.Linear(flat, out_ch)
        elif head == 'mlp':
            self.head = _mlp(flat, out_ch)
        elif head == 'sidernn':
            self.head = SideRNN(flat, out_ch // 2)
        else:
            self.head = nn.Sequential(SideRNN(flat, out_ch // 2), _mlp(out_ch, out_ch))

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        if feat.shape[2] != self.in_height:
            raise ValueError(f'TextBridge was built for features of height {self.in_height}, got {tuple(feat.shape)}')
        cols = F.adaptive_avg_pool2d(feat, (feat.shape[2], self.seq_len))  # (N, C, h, T)
        seq = cols.flatten(1, 2).permute(2, 0, 1)  # (T, N, C*h)
        return self.head(seq)
