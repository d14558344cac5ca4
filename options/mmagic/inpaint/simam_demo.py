# Seed 003, row "SimAM Attention": Base with SimAM (parameter-free, lambda 1e-4) at the end of every residual branch.
#   python tools/train.py options/mmagic/inpaint/simam_demo.py           # -> work_dirs/simam_demo
_base_ = 'base_demo.py'

model = dict(encdec=dict(simam=True, simam_lambda=1e-4))
