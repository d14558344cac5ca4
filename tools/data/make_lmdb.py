"""Make a BasicSR LMDB (data.mdb + meta_info.txt, key = file stem) from any image folder.

    python tools/data/make_lmdb.py --input datasets/DIV2K/DIV2K_train_HR_sub [--output X.lmdb]

A thin wrapper around ``basicsr.utils.lmdb_util.make_lmdb_from_imgs`` (BasicSR's own scripts are not in its
wheel and have hard-coded paths). The same LMDB folders serve MMagic's ``LoadImageFromFile`` lmdb backend.
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # the repository root

import plugins  # noqa: E402,F401  (applies the compat patches before basicsr is imported)
from plugins.common.image_io import IMAGE_EXTENSIONS, is_image_file  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--input', required=True, help='folder of images (searched recursively)')
    parser.add_argument('--output', help='LMDB folder to write (default: <input>.lmdb)')
    parser.add_argument('--compress-level', type=int, default=1, help='PNG compression level 0-9 (default: 1)')
    parser.add_argument('--n-thread', type=int, default=4, help='reader threads (default: 4)')
    parser.add_argument('--batch', type=int, default=5000, help='images per LMDB transaction (default: 5000)')
    args = parser.parse_args(argv)

    from basicsr.utils.lmdb_util import make_lmdb_from_imgs
    if not osp.isdir(args.input):
        parser.error(f'--input {args.input!r} is not a folder')
    rel_paths = sorted(
        osp.relpath(osp.join(root, f), args.input) for root, _, files in os.walk(args.input) for f in files
        if is_image_file(f))
    if not rel_paths:
        parser.error(f'no images ({", ".join(IMAGE_EXTENSIONS)}) under {args.input!r}')
    keys = [osp.splitext(p)[0] for p in rel_paths]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        parser.error(f'file names that differ only by extension give duplicate LMDB keys: {duplicates[:5]}')
    output = args.output or args.input.rstrip('/') + '.lmdb'
    if not output.endswith('.lmdb'):
        parser.error(f'--output must end with .lmdb (BasicSR checks it), got {output!r}')
    # make_lmdb_from_imgs shows a progress bar per image.
    make_lmdb_from_imgs(args.input, output, rel_paths, keys, batch=args.batch, compress_level=args.compress_level,
                        multiprocessing_read=args.n_thread > 1, n_thread=args.n_thread)
    print(f'wrote {len(keys)} images to {output}')


if __name__ == '__main__':
    main()
