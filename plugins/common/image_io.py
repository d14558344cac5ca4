"""Image files: the one list of image extensions, listing and reading images with errors that name the file, and
BasicSR LMDB copies of image folders, written atomically, that name or leave out the images they cannot read."""
import os
import os.path as osp
import shutil
import tempfile
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

from ..engine.errors import DataFaultError, OptionsError

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
    stem), written with ``write_lmdb``; an existing copy is replaced.

    Returns the LMDB folder (default: ``<folder>.lmdb``)."""
    lmdb_path = lmdb_path or folder.rstrip('/') + '.lmdb'
    names = sorted(f for f in os.listdir(folder) if is_image_file(f))
    if not names:
        raise FileNotFoundError(f'no images in {folder}')
    write_lmdb(folder, names, lmdb_path, replace=True)
    return lmdb_path


def unreadable_images(folder: str, rel_paths: Sequence[str], n_thread: int = 1,
                      progress: bool = False) -> Tuple[List[str], int]:
    """(the images of ``rel_paths`` under ``folder`` that OpenCV cannot decode, the decoded size in bytes of the
    others), reading them as BasicSR's LMDB writer does (``cv2.IMREAD_UNCHANGED``), with ``n_thread`` threads."""
    from concurrent.futures import ThreadPoolExecutor

    def decoded_bytes(rel: str) -> Optional[int]:
        img = cv2.imread(osp.join(folder, rel), cv2.IMREAD_UNCHANGED)
        return None if img is None else img.nbytes

    with ThreadPoolExecutor(max(1, n_thread)) as pool:
        sizes = pool.map(decoded_bytes, rel_paths)
        if progress:
            from tqdm import tqdm
            sizes = tqdm(sizes, total=len(rel_paths), unit='img', desc='check')
        sizes = list(sizes)
    return [rel for rel, size in zip(rel_paths, sizes) if size is None], sum(size or 0 for size in sizes)


def write_lmdb(folder: str, rel_paths: Sequence[str], lmdb_path: str, skip_bad: bool = False, replace: bool = False,
               compress_level: int = 1, n_thread: int = 1, batch: int = 5000, skip_hint: str = '',
               progress: bool = False) -> List[str]:
    """Write the images ``rel_paths`` (relative to ``folder``; key = the path without its extension) as a BasicSR
    LMDB at ``lmdb_path`` with ``basicsr.utils.lmdb_util.make_lmdb_from_imgs``, atomically: it writes a temporary
    LMDB next to ``lmdb_path`` and renames it there when complete, so a failure leaves nothing at ``lmdb_path`` (or
    the copy it replaces, with ``replace``). Every image is decoded first: an unreadable one raises
    ``DataFaultError`` naming it (``skip_hint`` appended) before anything is written, or, with ``skip_bad``, is left
    out, so ``meta_info.txt`` lists exactly the keys in the LMDB. A missing parent folder of ``lmdb_path`` is made.

    Returns the paths (relative to ``folder``) left out as unreadable."""
    from basicsr.utils.lmdb_util import make_lmdb_from_imgs  # imports lmdb, only needed here
    bad, total_bytes = unreadable_images(folder, rel_paths, n_thread, progress)
    if bad and not skip_bad:
        more = f' ({len(bad)} unreadable images in all: {", ".join(bad[:5])}{" ..." if len(bad) > 5 else ""})'
        raise DataFaultError(f'cannot read image {osp.join(folder, bad[0])}: not an image, truncated, or a format '
                             f'OpenCV cannot decode{more if len(bad) > 1 else ""}; nothing was written to '
                             f'{lmdb_path}{skip_hint}')
    skipped = set(bad)
    good = [p for p in rel_paths if p not in skipped]
    if not good:
        raise DataFaultError(f'no readable image among the {len(rel_paths)} in {folder}; nothing was written')
    lmdb_path = osp.abspath(lmdb_path)
    parent = osp.dirname(lmdb_path)
    os.makedirs(parent, exist_ok=True)
    holder = tempfile.mkdtemp(prefix=f'.{osp.basename(lmdb_path)}.partial-', dir=parent)
    try:
        partial = osp.join(holder, osp.basename(lmdb_path))
        # map_size: an upper bound of the PNG bytes (BasicSR's estimate from the first image can be too small).
        make_lmdb_from_imgs(folder, partial, good, [osp.splitext(p)[0] for p in good], batch=batch,
                            compress_level=compress_level, multiprocessing_read=n_thread > 1, n_thread=n_thread,
                            map_size=int(total_bytes * 1.5) + (64 << 20))
        if replace:
            replace_folder(partial, lmdb_path)
        else:
            os.rename(partial, lmdb_path)  # fails, rather than replaces, if a folder appeared there meanwhile
    finally:
        shutil.rmtree(holder, ignore_errors=True)
    return bad


def replace_folder(partial: str, target: str) -> None:
    """Move the finished folder ``partial`` to ``target``. An existing ``target`` is first moved aside, next to
    ``partial`` (into the temporary folder that holds it, which the caller removes), and moved back if the move of
    ``partial`` fails: a failure leaves the old folder where it was."""
    if not osp.exists(target):
        os.rename(partial, target)
        return
    replaced = osp.join(osp.dirname(partial), 'replaced')
    os.rename(target, replaced)
    try:
        os.rename(partial, target)
    except OSError:
        os.rename(replaced, target)
        raise
