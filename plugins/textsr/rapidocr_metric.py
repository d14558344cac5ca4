"""Word accuracy with an independent recognizer: PP-OCRv4's recognizer shipped inside ``rapidocr-onnxruntime``.

TextZoom scores SR images with recognizers that were not trained with the SR network (ASTER, MORAN, CRNN).
Offline, the PP-OCRv4 recognition model in the ``rapidocr-onnxruntime==1.4.4`` wheel plays that role (no
download; newer ``rapidocr`` releases fetch models at run time, so they are not used). Optional: install with
``pip install -e ".[textsr-ocr]"`` (see setup.py; the wheel's metadata wants ``opencv-python``, so
``pip install --no-deps rapidocr-onnxruntime==1.4.4`` also works next to opencv-python-headless). Nothing in
the tests requires it. Options that name this metric without the extra installed are refused by the options
check with the install line (``requires_extra``, read by ``plugins/engine/basicsr/options_check.py``).

    val:
      metrics:
        acc_ppocr:
          type: calculate_word_accuracy_rapidocr
"""
from functools import lru_cache

import numpy as np

from basicsr.utils.registry import METRIC_REGISTRY

from .word_accuracy_metric import calculate_word_accuracy

INSTALL = ('pip install -e ".[textsr-ocr]" (or: pip install onnxruntime pyclipper shapely && '
           'pip install --no-deps rapidocr-onnxruntime==1.4.4)')


@lru_cache(maxsize=1)
def _engine():
    try:
        from rapidocr_onnxruntime import RapidOCR
    except ImportError as err:
        raise ImportError(f'calculate_word_accuracy_rapidocr needs rapidocr-onnxruntime==1.4.4 and onnxruntime: '
                          f'{INSTALL}') from err
    return RapidOCR(intra_op_num_threads=1, inter_op_num_threads=1)  # one word at a time, one thread


def recognize_rapidocr(img: np.ndarray) -> str:
    """The word PP-OCRv4 reads in a BGR uint8 ``(H, W, 3)`` image (as BasicSR's ``tensor2img`` gives), or ''."""
    result, _ = _engine()(np.ascontiguousarray(img), use_det=False, use_cls=False, use_rec=True)
    return result[0][0] if result else ''


@METRIC_REGISTRY.register()
def calculate_word_accuracy_rapidocr(img: np.ndarray, label: str, **kwargs) -> float:
    """1.0 when PP-OCRv4's reading of the SR image ``img`` (BGR uint8) matches ``label`` after TextZoom's filter."""
    return calculate_word_accuracy(recognize_rapidocr(img), label)


# The options check refuses an options file with this metric, before any work, when the extra is missing.
calculate_word_accuracy_rapidocr.requires_extra = (('rapidocr_onnxruntime', 'onnxruntime'), INSTALL)
