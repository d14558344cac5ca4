"""Make a BasicSR LMDB (data.mdb + meta_info.txt, key = file stem) from any image folder.

    python tools/data/make_lmdb.py --input datasets/DIV2K/DIV2K_train_HR_sub [--output X.lmdb] [--skip-bad]
        [--overwrite]

A thin wrapper around ``basicsr.utils.lmdb_util.make_lmdb_from_imgs`` (BasicSR's own scripts are not in its
wheel and have hard-coded paths). The same LMDB folders serve MMagic's ``LoadImageFromFile`` lmdb backend.

Every image is decoded first: one that cannot be (truncated, empty, not an image) stops the tool with its path
(exit 1) before anything is written, or, with --skip-bad, is left out and listed, and meta_info.txt lists only the
images in the LMDB. The LMDB is written to a temporary folder next to --output and renamed when complete, so a
failure leaves no LMDB at --output. A missing parent folder of --output is created; an existing --output is
refused (exit 2), as BasicSR's scripts do, unless --overwrite is given: then the new LMDB replaces it only once it is
complete (a failure leaves the old one in place).
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # the repository root

import plugins  # noqa: E402,F401  (applies the compat patches before basicsr is imported)
from plugins.common.image_io import IMAGE_EXTENSIONS, is_image_file, write_lmdb  # noqa: E402
from plugins.engine.errors import DataFaultError  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--input', required=True, help='folder of images (searched recursively)')
    parser.add_argument('--output', help='LMDB folder to write (default: <input>.lmdb)')
    parser.add_argument('--skip-bad', action='store_true',
                        help='leave out (and list) the images that cannot be decoded, instead of stopping')
    parser.add_argument('--compress-level', type=int, default=1, help='PNG compression level 0-9 (default: 1)')
    parser.add_argument('--n-thread', type=int, default=4, help='reader threads (default: 4)')
    parser.add_argument('--batch', type=int, default=5000, help='images per LMDB transaction (default: 5000)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace an existing --output (once the new LMDB is complete); without it, refuse')
    args = parser.parse_args(argv)

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
    replacing = osp.exists(output)
    if replacing and not args.overwrite:
        parser.error(f'--output {output!r} already exists: pass --overwrite to replace it, or choose another folder')
    if replacing and not osp.isdir(output):
        parser.error(f'--output {output!r} exists and is not a folder: --overwrite replaces LMDB folders only')
    parent = osp.dirname(osp.abspath(output))
    created = not osp.isdir(parent)

    import lmdb
    try:  # make_lmdb_from_imgs shows a progress bar per image
        skipped = write_lmdb(args.input, rel_paths, output, skip_bad=args.skip_bad, replace=replacing,
                             compress_level=args.compress_level,
                             n_thread=args.n_thread, batch=args.batch, progress=True,
                             skip_hint=' (fix or remove it, or pass --skip-bad to leave unreadable images out)')
    except DataFaultError as err:
        print(f'error: {err}', file=sys.stderr)
        sys.exit(1)
    except (OSError, lmdb.Error) as err:
        # after BasicSR's progress bar, left open on its line
        kept = ', the existing LMDB is left as it was' if replacing else ''
        print(f'\nerror: cannot write the LMDB {output}: {err} (nothing was written there{kept})', file=sys.stderr)
        sys.exit(1)
    for rel in skipped:
        print(f'skipped (cannot decode): {osp.join(args.input, rel)}')
    print(f'wrote {len(rel_paths) - len(skipped)} images to {output}'
          + (f'; skipped {len(skipped)} that cannot be decoded (listed above)' if skipped else '')
          + (f'; created the folder {parent}' if created else '')
          + ('; replaced the LMDB that was there (--overwrite)' if replacing else ''))


if __name__ == '__main__':
    main()
