# Seed 003, row "MS-SSIM-L1 loss": Base plus the MS-SSIM + L1 mix of Zhao et al. (alpha 0.84, their paper's value)
# on the whole raw output. 3x3 SSIM windows: pytorch_msssim needs the image side above (win_size - 1) * 16, and the
# demo crops are 64x64 (use the default 11x11 windows from 161x161 up, e.g. at 256x256).
#   python tools/train.py options/mmagic/inpaint/msssim_l1_demo.py           # -> work_dirs/msssim_l1_demo
_base_ = 'base_demo.py'

model = dict(loss_rec=dict(type='MSSSIML1Loss', alpha=0.84, win_size=3, loss_weight=1.0))
