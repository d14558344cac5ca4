"""Make a synthetic TextZoom-like data set (TextZoom LMDB format) for the text SR line's tests and demos.

    python tools/data/make_text_data.py --output datasets/textzoom_synth [--num-train 512] [--num-test 64] [--seed 0]

Writes <out>/train and <out>/test/{easy,medium,hard} (keys num-samples, image_hr-%09d, image_lr-%09d, label-%09d;
HR 128x32, LR 64x16) and <out>/manifest.json. Words are rendered with matplotlib's DejaVu/STIX fonts in random
colours; LR = blur + downscale + noise, stronger from easy to hard (plugins/textsr/synthetic_textzoom.py).
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # the repository root


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--output', '--out', dest='output', default='datasets/textzoom_synth',
                        help='output folder (default: datasets/textzoom_synth)')
    parser.add_argument('--num-train', type=int, default=512, help='training pairs (mixed levels)')
    parser.add_argument('--num-test', type=int, default=64, help='pairs per test split (easy, medium, hard)')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    if args.num_train < 1 or args.num_test < 1:
        parser.error('--num-train and --num-test must be at least 1')
    from tqdm import tqdm
    import plugins  # noqa: F401  (compat patches before basicsr is imported)
    from plugins.textsr.synthetic_textzoom import make_textzoom_like
    with tqdm(total=args.num_train + 3 * args.num_test, desc='rendering words', unit='pair') as bar:
        manifest = make_textzoom_like(args.output, args.num_train, args.num_test, args.seed, progress=bar)
    print('wrote ' + ', '.join(f'{k} ({v["num"]})' for k, v in manifest['splits'].items()) + f' under {args.output}')


if __name__ == '__main__':
    main()
