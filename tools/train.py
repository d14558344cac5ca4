"""Train with BasicSR (`-opt options/train/<line>/<x>.yml`) or mmengine/MMagic (`options/mmagic/<line>/<x>.py`).

    python tools/train.py -opt options/train/classic/srcnn_x2.yml [--launcher pytorch] [--auto_resume] [--debug] [--force_yml k:sub=v] [--print-options]
    python tools/train.py options/mmagic/classic/srcnn_x2_demo.py [--launcher pytorch] [--work-dir DIR] [--resume] [--amp] [--auto-scale-lr] [--cfg-options k=v]

Multi-process or multi-node: `torchrun [--nnodes N --node_rank R --master_addr A --master_port P] --nproc_per_node G tools/train.py ... --launcher pytorch`.
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # the repository root, for `import plugins`

import plugins  # noqa: E402,F401  (compat patches, then the BasicSR lines' registrations)
from plugins.engine.cli import main  # noqa: E402

if __name__ == '__main__':
    main(sys.argv[1:], is_train=True)
