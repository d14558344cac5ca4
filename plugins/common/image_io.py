"""Image files: the one list of image extensions, listing and reading images with errors that name the file, and
BasicSR LMDB copies of image folders."""
import os
import os.path as osp
import shutil
from typing import List

import cv2
import numpy as np

from ..engine.errors import OptionsError

# Every extension a folder of images is searched for, here and in the datasets (OpenCV decodes them all).
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm')


def is_image_file(name: str) -> bool:
    """Whether a file name has one of ``IMAGE_EXTENSIONS`` (any case)."""
    return name.lower().endswith(IMAGE_EXTENSIONS)


def list_images(path: str) -> List[str]:
    """The image file ``path``, or the images directly inside the folder ``path``, sorted by name.

    Raises:
        OptionsError: when ``path`` does not exist or is a folder without images.
    """
    if osp.isfile(path):
        return [path]
    if not osp.isdir(path):
        raise OptionsError(f'input not found: {path} (expected an image file or a folder of images)')
    files = sorted(osp.join(path, f) for f in os.listdir(path) if is_image_file(f) and osp.isfile(osp.join(path, f)))
    if not files:
        raise OptionsError(f'no images in folder {path} (looked for {", ".join(IMAGE_EXTENSIONS)})')
    return files


def read_image(path: str) -> np.ndarray:
    """Read an image as BGR uint8 ``(H, W, 3)``, with an error naming the file when it cannot be decoded."""
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise OptionsError(f'cannot read image {path} (not an image, or a format OpenCV cannot decode)')
    return img


def make_lmdb(folder: str, lmdb_path: str = None) -> str:
    """LMDB copy of the images directly in ``folder``, in BasicSR's format (``meta_info.txt`` + PNG bytes, key = file
    stem), written with ``basicsr.utils.lmdb_util.make_lmdb_from_imgs``; an existing copy is replaced.

    Returns the LMDB folder (default: ``<folder>.lmdb``)."""
    from basicsr.utils.lmdb_util import make_lmdb_from_imgs  # imports lmdb, only needed here
    lmdb_path = lmdb_path or folder.rstrip('/') + '.lmdb'
    names = sorted(f for f in os.listdir(folder) if is_image_file(f))
    if not names:
        raise FileNotFoundError(f'no images in {folder}')
    if osp.exists(lmdb_path):
        shutil.rmtree(lmdb_path)
    make_lmdb_from_imgs(folder, lmdb_path, names, [osp.splitext(n)[0] for n in names], n_thread=1)
    return lmdb_path
