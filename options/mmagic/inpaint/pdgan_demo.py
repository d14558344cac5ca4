# Seed 003, row "SPDNorm": PD-GAN's SPDNorm generator (4 units, 4x4 -> 64x64) on the prior of the trained Base
# model, as the seed did with PICNet's: two noise vectors per image, LSGAN (the seed's; PD-GAN's own is hinge:
# gan_type='hinge'), L1 on hole/known pixels, PD-GAN's hole TV (x0.1) and diversity loss, a SAGAN self-attention
# after the third unit (the seed's addition), generator EMA.
#
#   python tools/train.py options/mmagic/inpaint/base_demo.py                   # first: the prior
#   python tools/train.py options/mmagic/inpaint/pdgan_demo.py                  # -> work_dirs/pdgan_demo
#   python tools/train.py options/mmagic/inpaint/pdgan_demo.py --cfg-options model.prior.checkpoint=PATH.pth
#   python tools/inpaint/sample.py options/mmagic/inpaint/pdgan_demo.py work_dirs/pdgan_demo/iter_600.pth \
#       --input datasets/demo/val/HR/chelsea.png --num 4 --output completions.png
#
# PD-GAN's whole recipe at 256x256 (its discriminator, feature matching, VGG losses, learning rates) is
# pdgan_paper_256.py. PD-GAN's perceptual loss (VGG16 relu1_1..relu4_1, x10) and VGG diversity need local VGG16
# weights: add
#   loss_percep=dict(type='VGG16PerceptualLoss', vgg_path='weights/vgg16-397923af.pth', loss_weight=10.0)
# and vgg_path=... to loss_diversity. At 256x256 (PD-GAN's size) use SPDNormGenerator's defaults
# (z 256, 1024..64 channels, 6 units, 186,007,171 parameters) with a 256x256 base generator as the prior.
_base_ = '_base_/demo.py'

prior_generator = dict(type='InpaintEncoderDecoder', in_channels=4, base_channels=32, num_down=2,
                       dilations=(1, 2, 4, 1), norm='BN')
model = dict(
    type='PDGANInpaintor',
    data_preprocessor={{_base_.data_preprocessor}},
    # a .pth or the base model's work dir; composite: SPDNorm sees the prior's completion with the known pixels
    # restored (PD-GAN's own recipe, pdgan_paper_256.py, uses the raw prior output: composite=False)
    prior=dict(generator=prior_generator, checkpoint='work_dirs/base_demo', composite=True),
    encdec=dict(type='SPDNormGenerator', z_dim=64, latent_size=4, channels=(128, 128, 64, 64, 32),
                mask_numbers=(2, 3, 4, 5), mask_kernels=(3, 3, 3, 5), hidden=32, self_attn_after=2),
    disc=dict(type='MultiScalePatchDiscriminator', in_channels=3, base_channels=32, num_layers=3, num_scales=2),
    loss_gan=dict(type='GANLoss', gan_type='lsgan', loss_weight=0.1),
    loss_l1_hole=dict(type='L1Loss', loss_weight=6.0),
    loss_l1_valid=dict(type='L1Loss', loss_weight=1.0),
    loss_tv=dict(type='HoleTVLoss', loss_weight=0.1),
    loss_diversity=dict(type='InpaintDiversityLoss', loss_weight=0.01),
    ema_cfg=dict(momentum=0.01),
    train_cfg=dict(disc_step=1),
    test_cfg=dict(noise_seed=0))
