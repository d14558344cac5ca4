# Seed 003, row "SimAM Attention" at the seed's scale: base_celeba-hq_256.py with SimAM (lambda 1e-4) in every
# residual block, at the end of the branch (ours); model.encdec.simam_position='before_norm' puts it where the SimAM
# reference does (after the last conv, before its norm).
#   python tools/train.py options/mmagic/inpaint/simam_celeba-hq_256.py        # -> work_dirs/simam_celeba-hq_256
_base_ = 'base_celeba-hq_256.py'

model = dict(encdec=dict(simam=True, simam_lambda=1e-4))
