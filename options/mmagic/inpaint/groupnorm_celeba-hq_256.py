# Seed 003, row "Group Normalization" at the seed's scale: base_celeba-hq_256.py with GroupNorm (8 groups).
#   python tools/train.py options/mmagic/inpaint/groupnorm_celeba-hq_256.py    # -> work_dirs/groupnorm_celeba-hq_256
_base_ = 'base_celeba-hq_256.py'

model = dict(encdec=dict(norm='GN', gn_groups=8))
