"""Build datasets/demo from the photos inside the installed scikit-image and matplotlib wheels.

    python tools/data/make_demo_data.py [--output datasets/demo]

The layout (HR, MATLAB-bicubic LR at x2/x3/x4, training sub-images, LMDB copies) is in plugins/common/demo_data.py.
"""
import argparse
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # the repository root

import plugins  # noqa: E402,F401  (applies the compat patches before basicsr is imported)
from plugins.common.demo_data import build_demo_data  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--output', '--out', dest='output', default='datasets/demo',
                        help='output folder (default: datasets/demo)')
    args = parser.parse_args(argv)
    start = time.time()
    manifest = build_demo_data(args.output)
    n_sub = sum(e['sub_images'] for e in manifest['splits']['train'])
    print(f"demo data in {args.output}: {len(manifest['splits']['train'])} train images ({n_sub} sub-images), "
          f"{len(manifest['splits']['val'])} val images, x{'/x'.join(map(str, manifest['scales']))}, "
          f'LMDB copies; {time.time() - start:.0f} s')
    open(osp.join(args.output, '.complete'), 'w').close()


if __name__ == '__main__':
    main()
