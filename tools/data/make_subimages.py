"""Cut a DIV2K-style training folder into overlapping sub-images for faster loading, with BasicSR's rule.

    python tools/data/make_subimages.py --input datasets/DIV2K/DIV2K_train_HR \\
        --lr-input datasets/DIV2K/DIV2K_train_LR_bicubic --scales 2 3 4 [--crop-size 480 --step 240 --thresh-size 0]

writes datasets/DIV2K/DIV2K_train_HR_sub/0001_s001.png ... (--output, default <input>_sub) and, for every scale s,
datasets/DIV2K/DIV2K_train_LR_bicubic/X<s>_sub/0001_s001.png ... with the same names (options: filename_tmpl '{}').
The LR partner of HR 0001.png is X<s>/0001x<s>.png (DIV2K's names) or X<s>/0001.png (the demo data's).

The rule is BasicSR's `scripts/data_preparation/extract_subimages.py`: crops of --crop-size start every --step
pixels along each axis, and when more than --thresh-size pixels remain after the last one, one more crop is added
flush with the border; crops are numbered row by row from _s001. That script is not in BasicSR's wheel (1.4.2
installs no `scripts` package), so its worker cannot be imported; this tool follows its rule with BasicSR's
`imwrite`. Where it differs: the LR crops are the HR crops divided by s (BasicSR cuts each LR folder on its own grid
of crop/s, step/s, which puts the flush crop one pixel off when an HR side is not a multiple of s); so, with
--lr-input, the HR grid is laid on the HR image cut down to a multiple of lcm(scales) (nothing changes where the HR
sides are such multiples, as in DIV2K), and --crop-size and --step must divide by every scale (480 and 240: x2
240/120, x3 160/80, x4 120/60, BasicSR's numbers). Only the trailing x<s> of an LR name is dropped
(BasicSR drops every 'x2', 'x3', 'x4', 'x8' anywhere in a name).

Every folder is written under a temporary name next to it and renamed when all are complete, so a failure (an image
that cannot be read, a missing LR partner: exit 1, named) leaves no output. Existing outputs are refused (exit 2)
unless --overwrite is given. Images smaller than --crop-size give no crop and are listed.
"""
import argparse
import math
import os
import os.path as osp
import shutil
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from functools import reduce

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # the repository root

import plugins  # noqa: E402,F401  (applies the compat patches before basicsr is imported)
from plugins.common.image_io import IMAGE_EXTENSIONS, replace_folder  # noqa: E402


def crop_starts(length: int, crop: int, step: int, thresh: int) -> list:
    """BasicSR's sub-image starts along one axis of ``length`` pixels: 0, step, 2 step, ... while a crop fits, plus
    ``length - crop`` when more than ``thresh`` pixels are left after the last crop; [] when no crop fits."""
    if length < crop:
        return []
    starts = list(range(0, length - crop + 1, step))
    if length - (starts[-1] + crop) > thresh:
        starts.append(length - crop)
    return starts


def lr_partner(lr_dir: str, stem: str, scale: int):
    """The LR image of HR ``stem`` in ``lr_dir``: ``<stem>x<scale>.*`` (DIV2K) or ``<stem>.*``; None if neither."""
    for name in (f'{stem}x{scale}', stem):
        for ext in IMAGE_EXTENSIONS:
            for candidate in (name + ext, name + ext.upper()):
                if osp.isfile(osp.join(lr_dir, candidate)):
                    return osp.join(lr_dir, candidate)
    return None


class ExtractError(Exception):
    """An input the tool cannot cut (unreadable, missing or mis-sized LR partner); the message names the file."""


def cut_one(hr_path: str, jobs: list, crop: int, step: int, thresh: int, mod: int, compress_level: int) -> int:
    """Cut ``hr_path`` and its LR partners; ``jobs`` is [(scale, lr_path or None, out_dir)] with scale 1 for HR.
    Returns the number of crops per folder (0 when the image is smaller than ``crop``)."""
    import cv2
    from basicsr.utils import imwrite

    stem, ext = osp.splitext(osp.basename(hr_path))
    hr = cv2.imread(hr_path, cv2.IMREAD_UNCHANGED)
    if hr is None:
        raise ExtractError(f'cannot read image {hr_path} (not an image, truncated, or a format OpenCV cannot decode)')
    h, w = hr.shape[0] - hr.shape[0] % mod, hr.shape[1] - hr.shape[1] % mod
    boxes = [(y, x) for y in crop_starts(h, crop, step, thresh) for x in crop_starts(w, crop, step, thresh)]
    for scale, lr_path, out_dir in jobs:
        img = hr
        if scale > 1:
            img = cv2.imread(lr_path, cv2.IMREAD_UNCHANGED)
            if img is None:
                raise ExtractError(f'cannot read image {lr_path} (not an image, truncated, or a format OpenCV cannot '
                                   'decode)')
            lo = (h // scale, w // scale)
            hi = (math.ceil(hr.shape[0] / scale), math.ceil(hr.shape[1] / scale))
            if not (lo[0] <= img.shape[0] <= hi[0] and lo[1] <= img.shape[1] <= hi[1]):
                raise ExtractError(f'{lr_path} is {img.shape[1]}x{img.shape[0]}, not x{scale} smaller than {hr_path} '
                                   f'({hr.shape[1]}x{hr.shape[0]}): expected {lo[1]}-{hi[1]} x {lo[0]}-{hi[0]}')
        c = crop // scale
        for index, (y, x) in enumerate(boxes, start=1):
            sub = img[y // scale:y // scale + c, x // scale:x // scale + c, ...]
            imwrite(sub.copy(), osp.join(out_dir, f'{stem}_s{index:03d}{ext}'),
                    params=[cv2.IMWRITE_PNG_COMPRESSION, compress_level])
    return len(boxes)


def main(argv=None):
    from tqdm import tqdm

    from plugins.common.image_io import list_images
    from plugins.engine.errors import OptionsError

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--input', required=True, help='folder of HR images (DIV2K_train_HR)')
    parser.add_argument('--output', help='HR sub-image folder (default: <input>_sub)')
    parser.add_argument('--lr-input', help='folder holding X<s>/ LR bicubic folders (DIV2K_train_LR_bicubic); '
                        'their sub-images go to <lr-input>/X<s>_sub')
    parser.add_argument('--scales', type=int, nargs='+', default=[2, 3, 4],
                        help='LR scales to cut with --lr-input (default: 2 3 4)')
    parser.add_argument('--crop-size', type=int, default=480, help='HR sub-image size (default: 480, as BasicSR)')
    parser.add_argument('--step', type=int, default=240, help='HR stride between crops (default: 240, as BasicSR)')
    parser.add_argument('--thresh-size', type=int, default=0,
                        help='add a crop flush with the border when more than this many HR pixels remain after '
                        'the last one (default: 0, as BasicSR)')
    parser.add_argument('--compress-level', type=int, default=3, help='PNG compression level 0-9 (default: 3)')
    parser.add_argument('--n-thread', type=int, default=4, help='images cut at once (default: 4)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace existing output folders (once all are complete); without it, refuse')
    args = parser.parse_args(argv)

    if args.crop_size < 1 or args.step < 1 or args.thresh_size < 0:
        parser.error(f'--crop-size ({args.crop_size}) and --step ({args.step}) must be positive and --thresh-size '
                     f'({args.thresh_size}) not negative')
    if not 0 <= args.compress_level <= 9:
        parser.error(f'--compress-level must be 0-9, got {args.compress_level}')
    try:
        hr_paths = list_images(args.input) if osp.isdir(args.input) else None
    except OptionsError as err:
        parser.error(str(err))
    if hr_paths is None:
        parser.error(f'--input {args.input!r} is not a folder')
    outputs = [(1, None, args.output or args.input.rstrip('/') + '_sub')]
    scales = sorted(set(args.scales)) if args.lr_input else []
    if args.lr_input:
        if any(s < 2 for s in scales):
            parser.error(f'--scales must be 2 or more, got {args.scales}')
        bad = [s for s in scales if args.crop_size % s or args.step % s]
        if bad:
            parser.error(f'--crop-size {args.crop_size} and --step {args.step} must divide by every scale, not by '
                         f'{bad} (the LR crops are the HR crops / scale)')
        for s in scales:
            lr_dir = osp.join(args.lr_input, f'X{s}')
            if not osp.isdir(lr_dir):
                parser.error(f'--lr-input {args.lr_input!r} has no folder X{s} (for --scales {s})')
            outputs.append((s, lr_dir, osp.join(args.lr_input, f'X{s}_sub')))
    existing = [out for _, _, out in outputs if osp.exists(out)]
    if existing and not args.overwrite:
        parser.error(f'{existing[0]!r} already exists: pass --overwrite to replace it, or choose another --output')
    if any(osp.isfile(out) for out in existing):
        parser.error(f'{next(o for o in existing if osp.isfile(o))!r} is a file: --overwrite replaces folders only')
    mod = reduce(lambda a, b: a * b // math.gcd(a, b), scales, 1)

    holders, partial = [], {}
    try:
        for _, _, out in outputs:
            parent = osp.dirname(osp.abspath(out))
            os.makedirs(parent, exist_ok=True)
            holders.append(tempfile.mkdtemp(prefix=f'.{osp.basename(out)}.partial-', dir=parent))
            partial[out] = osp.join(holders[-1], osp.basename(out))
            os.makedirs(partial[out])
        work = []
        for hr_path in hr_paths:
            stem = osp.splitext(osp.basename(hr_path))[0]
            jobs = [(1, None, partial[outputs[0][2]])]
            for s, lr_dir, out in outputs[1:]:
                lr_path = lr_partner(lr_dir, stem, s)
                if lr_path is None:
                    raise ExtractError(f'no LR partner of {hr_path} in {lr_dir} (looked for {stem}x{s}.* and '
                                       f'{stem}.*)')
                jobs.append((s, lr_path, partial[out]))
            work.append((hr_path, jobs))
        with ThreadPoolExecutor(max(1, args.n_thread)) as pool:  # OpenCV releases the GIL while coding images
            counts = list(tqdm(pool.map(lambda job: cut_one(*job, args.crop_size, args.step, args.thresh_size, mod,
                                                            args.compress_level), work),
                               total=len(work), unit='img', desc='sub-images'))
        for _, _, out in outputs:
            replace_folder(partial[out], out)  # an old folder goes back in place if the move fails
    except ExtractError as err:
        print(f'error: {err}; nothing was written', file=sys.stderr)
        sys.exit(1)
    except OSError as err:
        print(f'error: cannot write the sub-images: {err}; nothing was written', file=sys.stderr)
        sys.exit(1)
    finally:
        for holder in holders:
            shutil.rmtree(holder, ignore_errors=True)
    for hr_path, count in zip(hr_paths, counts):
        if not count:
            print(f'skipped (smaller than --crop-size {args.crop_size} after the cut to a multiple of {mod}): '
                  f'{hr_path}' if mod > 1 else f'skipped (smaller than --crop-size {args.crop_size}): {hr_path}')
    n_cut = sum(1 for count in counts if count)
    skipped = len(hr_paths) - n_cut
    print(f'cut {n_cut} image{"s" if n_cut != 1 else ""}{f" ({skipped} skipped)" if skipped else ""} into '
          f'{sum(counts)} sub-images of {args.crop_size}x{args.crop_size} (step {args.step}, thresh '
          f'{args.thresh_size}): {outputs[0][2]}'
          + ''.join(f', {out} ({args.crop_size // s}x{args.crop_size // s})' for s, _, out in outputs[1:])
          + ('; replaced what was there (--overwrite)' if existing else ''))


if __name__ == '__main__':
    main()
