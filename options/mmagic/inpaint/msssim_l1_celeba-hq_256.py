# Seed 003, row "MS-SSIM-L1 loss" at the seed's scale: base_celeba-hq_256.py plus Zhao et al.'s MS-SSIM + L1 mix
# (alpha 0.84) on the whole raw output, with MS-SSIM's usual 11x11 windows (256x256 images are large enough).
#   python tools/train.py options/mmagic/inpaint/msssim_l1_celeba-hq_256.py    # -> work_dirs/msssim_l1_celeba-hq_256
_base_ = 'base_celeba-hq_256.py'

model = dict(loss_rec=dict(type='MSSSIML1Loss', alpha=0.84, win_size=11, loss_weight=1.0))
