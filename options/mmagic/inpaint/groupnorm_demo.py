# Seed 003, row "Group Normalization": Base with GroupNorm (8 groups) instead of BatchNorm.
#   python tools/train.py options/mmagic/inpaint/groupnorm_demo.py           # -> work_dirs/groupnorm_demo
_base_ = 'base_demo.py'

model = dict(encdec=dict(norm='GN', gn_groups=8))
