"""Inference of text SR networks on word crops without ground truth, and what a recognizer reads in them:
``tools/infer.py -opt options/test/textsr/X.yml --checkpoint net_g.pth --input CROPS [--recognizer crnn.pth|ppocr]``.

Each crop, of any size, is made a TextZoom LR image as training makes it (``textzoom_dataset.to_tensor``): PIL
bicubic resize to TextZoom's LR size (64 x 16 for the x2 networks: the 128 x 32 HR size over the scale) and, for
4-channel networks, the binary text mask of the resized crop as the 4th channel. The network's RGB output
(128 x 32, clamped to [0, 1]) is written as ``<stem>_<suffix>.png``. With ``--recognizer`` a recognizer reads the
bicubic upsampling of the same LR input (``TextBicubic`` with its defaults: aligned corners off, clamped) and the SR
output, and
``<output>/text.csv`` gets one row per crop: ``file,bicubic_text,sr_text``. The recognizer is a CRNN checkpoint
(crnn.pytorch's ``crnn.pth``, or a BasicSR ``net_rec_*.pth`` of this line: ``crnn_arch.load_recognizer``) or
``ppocr``, PP-OCRv4 of the optional ``textsr-ocr`` extra (``rapidocr_metric.recognize_rapidocr``).
"""
import csv
import os
import os.path as osp
from typing import Callable, List, Optional

import numpy as np
import torch
from basicsr.utils import tensor2img
from PIL import Image

from ..common.inference import InferenceAdapter, register_inference_adapter
from ..common.speed_modes import SpeedModes
from ..engine.errors import OptionsError
from .crnn_arch import CRNN, INPUT_NORMS, load_recognizer
from .labels import ctc_greedy_decode
from .textzoom_dataset import to_tensor
from .tsrn_arch import TSRN, TextBicubic

TEXTZOOM_HR_SIZE = (32, 128)  # (H, W) of TextZoom's HR crops; the LR size is this over the scale
PPOCR = 'ppocr'
CSV_NAME = 'text.csv'

# A recognizer: RGB (N, 3, H, W) in [0, 1] -> the word it reads in the first image.
Reader = Callable[[torch.Tensor], str]


def lr_input(img: np.ndarray, scale: int, mask: bool) -> torch.Tensor:
    """A BGR uint8 word crop ``(H, W, 3)`` of any size -> the TextZoom LR input ``(3 or 4, 32 / scale, 128 / scale)``
    in [0, 1]: PIL bicubic resize, and the text mask channel with ``mask`` (as ``TextZoomLMDBDataset`` gives)."""
    hr_h, hr_w = TEXTZOOM_HR_SIZE
    if hr_h % scale or hr_w % scale:
        raise OptionsError(f'text SR scale {scale}: TextZoom\'s HR size {hr_w}x{hr_h} is not divisible by it')
    rgb = Image.fromarray(np.ascontiguousarray(img[..., ::-1]))
    return to_tensor(rgb, (hr_w // scale, hr_h // scale), mask)


def _rgb(out: torch.Tensor) -> torch.Tensor:
    """The image of a text SR output ``(N, 3 or 4, H, W)``: RGB float32 in [0, 1], contiguous (both the SR and the
    bicubic images reach the recognizer through this one path)."""
    return out[:, :3].float().clamp(0, 1).contiguous()


def load_crnn(path: str, device: torch.device, input_norm: str = 'textzoom') -> CRNN:
    """A CRNN (37 classes, 256 hidden: crnn.pytorch's) with the weights of ``path``, in eval mode on ``device``,
    fed as ``input_norm`` says (``textzoom``: [0, 1], as TextZoom's evaluation feeds crnn.pth; ``crnn.pytorch``:
    [-1, 1], the range crnn.pth was trained on)."""
    if not osp.isfile(path):
        raise OptionsError(f'--recognizer {path!r} not found: give a CRNN checkpoint (crnn.pytorch\'s crnn.pth, or a '
                           f'net_rec_*.pth of this line) or {PPOCR!r} for PP-OCRv4 (pip install -e ".[textsr-ocr]")')
    rec = CRNN(input_norm=input_norm)
    report = load_recognizer(rec, path)
    if report['missing']:
        raise OptionsError(f'--recognizer {path}: the checkpoint has no weights for {len(report["missing"])} tensors '
                           f'of the CRNN (e.g. {", ".join(report["missing"][:3])}); expected a whole CRNN(37 classes, '
                           '256 hidden)')
    return rec.eval().to(device)


def crnn_reader(path: str, device: torch.device, input_norm: str = 'textzoom') -> Reader:
    """What :func:`load_crnn`'s CRNN reads in an image, by greedy CTC decoding."""
    rec = load_crnn(path, device, input_norm)

    def read(img: torch.Tensor) -> str:
        with torch.inference_mode():
            return ctc_greedy_decode(rec(img.to(device).float()))[0]
    return read


def ppocr_reader() -> Reader:
    """PP-OCRv4's recognizer of the ``textsr-ocr`` extra; ``OptionsError`` with the install line when missing."""
    from ..engine.basicsr.options_check import missing_extra
    from .rapidocr_metric import calculate_word_accuracy_rapidocr, recognize_rapidocr
    install = missing_extra(calculate_word_accuracy_rapidocr)  # the metric's own declaration of its extra
    if install:
        raise OptionsError(f'--recognizer {PPOCR} needs the PP-OCR extra: {install}')
    return lambda img: recognize_rapidocr(tensor2img(img[:1].float().cpu(), rgb2bgr=True, min_max=(0, 1)))


class TextSRAdapter(InferenceAdapter):
    """Text SR networks (TSRN, and the ``TextBicubic`` baseline): word crops at TextZoom's LR size, the mask channel
    built as in training, and optionally a CSV of what a recognizer reads in bicubic and in SR."""

    name = 'text SR (TSRN)'
    flags = ('recognizer', 'recognizer_input')
    specific = True

    def __init__(self):
        self.rows: List[List[str]] = []
        self.reader_name: Optional[str] = None
        self.current = ''

    def add_arguments(self, group) -> None:
        group.add_argument('--recognizer', default=None, metavar='CRNN.pth|ppocr',
                           help='read the bicubic and the SR crop with this recognizer and write <output>/text.csv '
                           '(file,bicubic_text,sr_text): a CRNN checkpoint (crnn.pytorch crnn.pth or net_rec_*.pth) '
                           'or ppocr (PP-OCRv4, extra textsr-ocr)')
        group.add_argument('--recognizer-input', default=None, choices=INPUT_NORMS,
                           help="how a CRNN --recognizer is fed: textzoom ([0, 1], TextZoom's evaluation, the "
                           'default) or crnn.pytorch ([-1, 1], the range crnn.pth was trained on)')

    def accepts(self, net, channels) -> bool:
        return isinstance(net, (TSRN, TextBicubic))

    def refuse_flags(self, net, channels, where) -> str:
        return f'--recognizer is for text SR networks (TSRN); the network of {where} is {type(net).__name__}'

    def prepare(self, net, channels, args, scale, where, device):
        if args.tile:
            raise OptionsError('--tile is not for text SR: each word crop is resized to TextZoom\'s LR size '
                               f'({TEXTZOOM_HR_SIZE[1] // scale}x{TEXTZOOM_HR_SIZE[0] // scale}); use --tile 0')
        mask = channels == 4
        lr_input(np.zeros((4, 4, 3), np.uint8), scale, mask)  # the scale fits TextZoom's sizes
        reader = None
        if args.recognizer:
            if args.recognizer == PPOCR and args.recognizer_input:
                raise OptionsError('--recognizer-input is for a CRNN --recognizer; PP-OCRv4 reads the image as it is')
            reader = ppocr_reader() if args.recognizer == PPOCR else crnn_reader(
                args.recognizer, device, args.recognizer_input or 'textzoom')
        elif args.recognizer_input:
            raise OptionsError('--recognizer-input needs --recognizer CRNN.pth')
        self.rows, self.reader_name = [], args.recognizer if reader else None
        net = net.eval().to(device)
        bicubic = TextBicubic(scale)
        modes = SpeedModes.from_args(args)  # --channels-last: the inputs in the network's memory format

        def run(img: np.ndarray):
            lq = lr_input(img, scale, mask)[None].to(device)
            with torch.inference_mode():
                sr = _rgb(net(modes.to_input(lq)))
                if reader is not None:
                    self.rows.append([self.current, reader(_rgb(bicubic(lq))), reader(sr)])
            return [('', tensor2img(sr.cpu(), rgb2bgr=True, min_max=(0, 1)))]
        return run

    def start_file(self, path: str) -> None:
        self.current = osp.basename(path)

    def finish(self, out_dir: str) -> List[str]:
        if self.reader_name is None:
            return []
        path = osp.join(out_dir, CSV_NAME)
        os.makedirs(out_dir, exist_ok=True)
        with open(path, 'w', newline='', encoding='utf-8') as f:
            writer = csv.writer(f)
            writer.writerow(['file', 'bicubic_text', 'sr_text'])
            writer.writerows(self.rows)
        differ = sum(row[1] != row[2] for row in self.rows)
        return [f'wrote {path}: {len(self.rows)} crop(s) read by {self.reader_name}; bicubic and SR readings differ '
                f'on {differ}']


register_inference_adapter(TextSRAdapter())
