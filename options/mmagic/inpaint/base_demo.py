# Seed 003, row "Base": the encoder-decoder generator (BatchNorm, dilated residual blocks) with L1 on the hole and
# the known region (MMagic's PConv weights 6 / 1), LSGAN on a spectral-norm patch discriminator and the hole TV loss,
# generator EMA. The PD-GAN config (pdgan_demo.py) uses this model's checkpoint as its prior.
#
#   python tools/data/make_demo_data.py                                              # once: datasets/demo
#   python tools/train.py options/mmagic/inpaint/base_demo.py                   # -> work_dirs/base_demo
#   python tools/train.py options/mmagic/inpaint/base_demo.py --resume          # go on from the last checkpoint
#   torchrun --nproc_per_node=2 tools/train.py options/mmagic/inpaint/base_demo.py --launcher pytorch
#   python tools/test.py options/mmagic/inpaint/base_demo.py --checkpoint work_dirs/base_demo/iter_600.pth
_base_ = '_base_/demo.py'

model = dict(
    type='EncDecInpaintor',
    data_preprocessor={{_base_.data_preprocessor}},
    encdec=dict(type='InpaintEncoderDecoder', in_channels=4, base_channels=32, num_down=2, dilations=(1, 2, 4, 1),
                norm='BN'),
    disc=dict(type='MultiScalePatchDiscriminator', in_channels=3, base_channels=32, num_layers=3, num_scales=2),
    loss_gan=dict(type='GANLoss', gan_type='lsgan', loss_weight=0.1),
    loss_l1_hole=dict(type='L1Loss', loss_weight=6.0),
    loss_l1_valid=dict(type='L1Loss', loss_weight=1.0),
    loss_tv=dict(type='HoleTVLoss', loss_weight=0.1),
    ema_cfg=dict(momentum=0.01),
    train_cfg=dict(disc_step=1),
    test_cfg=dict())
