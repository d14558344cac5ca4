"""Test with BasicSR (`-opt options/test/<line>/<x>.yml`) or mmengine/MMagic (`options/mmagic/<line>/<x>.py`).

    python tools/test.py -opt options/test/classic/srcnn_x2.yml [--launcher pytorch]  [--force_yml k:sub=v]
    python tools/test.py options/mmagic/classic/srcnn_x2_demo.py CHECKPOINT [--out METRICS.json] [--work-dir DIR]
        [--launcher pytorch] [--cfg-options k=v]            (MMagic's form; --checkpoint CHECKPOINT works too)

Multi-process or multi-node: `torchrun [--nnodes N --node_rank R --master_addr A --master_port P] --nproc_per_node G tools/test.py ... --launcher pytorch`.
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # the repository root, for `import plugins`

import plugins  # noqa: E402,F401  (compat patches, then the BasicSR lines' registrations)
from plugins.engine.cli import main  # noqa: E402

if __name__ == '__main__':
    main(sys.argv[1:], is_train=False)
