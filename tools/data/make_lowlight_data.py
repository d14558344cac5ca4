"""Synthetic low/normal-light pairs in LOL's layout, from the photos inside the installed scikit-image and
matplotlib wheels (or your own images), with every darkening parameter recorded in <out>/params.json.

    python tools/data/make_lowlight_data.py [--output datasets/lowlight_demo] [--variants 2] [--max-side 400] [--seed 0]
        [--train IMG ...] [--val IMG ...] [--target-gain LO HI] [--lmdb]

The darkening (exposure/gamma curve, colour cast, shot + read noise, 8-bit) is in plugins/lowlight/synthetic_pairs.py.
"""
import argparse
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # the repository root


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--output', '--out', dest='output', default='datasets/lowlight_demo',
                        help='output root (default: datasets/lowlight_demo)')
    parser.add_argument('--variants', type=int, default=2, help='darkened versions per training photo (default: 2)')
    parser.add_argument('--max-side', type=int, default=400, help='long side of the images (default: 400)')
    parser.add_argument('--seed', type=int, default=0, help='random seed (default: 0)')
    parser.add_argument('--train', nargs='+', default=None, help='training photos (default: the demo photos)')
    parser.add_argument('--val', nargs='+', default=None, help='evaluation photos (default: the demo val photos)')
    parser.add_argument('--target-gain', type=float, nargs=2, default=None, metavar=('LO', 'HI'),
                        help='re-expose each normal-light target by a gain drawn in [LO, HI] (default: 1 1, off)')
    parser.add_argument('--lmdb', action='store_true', help='also write BasicSR LMDB copies (low.lmdb, high.lmdb)')
    args = parser.parse_args(argv)

    import plugins  # noqa: F401  (compat patches before basicsr is imported)
    from plugins.common.image_io import make_lmdb
    from plugins.lowlight.synthetic_pairs import make_pairs
    start = time.time()
    try:
        ranges = {'target_gain': args.target_gain} if args.target_gain else None
        record = make_pairs(args.output, args.train, args.val, args.variants, args.max_side, args.seed, ranges)
    except (ValueError, OSError) as err:
        print(f'error: {err}', file=sys.stderr, flush=True)
        sys.exit(2)
    if args.lmdb:
        for split in record['pairs']:
            for kind in ('low', 'high'):
                make_lmdb(osp.join(args.output, split, kind))
    for split, pairs in record['pairs'].items():
        low = sum(p['low_mean'] for p in pairs) / len(pairs)
        high = sum(p['high_mean'] for p in pairs) / len(pairs)
        print(f'{split}: {len(pairs)} pairs, mean low {low:.3f} / high {high:.3f}')
    print(f'wrote {args.output} (parameters in {osp.join(args.output, "params.json")}) in {time.time() - start:.0f} s')


if __name__ == '__main__':
    main()
