# PD-GAN's training recipe (KumapowerLIU/PD-GAN, config/{base,train}_config.py and models/PDGAN.py) at 256x256 on
# CelebA-HQ (or Places2 / Paris StreetView: data_root) with irregular masks from a folder (datasets/README.md):
# SPDNormGenerator at PD-GAN's size (z 256, 1024..64 channels, 6 units, 186,007,171 parameters), two noise samples
# per image, PD-GAN's discriminator (mask and image, 6 channels, spectral norm + InstanceNorm, 2 scales) judging the
# raw outputs, hinge GAN loss, feature matching x10 / num_D, VGG16 perceptual loss on the raw outputs (relu1_1..
# relu4_1, x10), hole TV x0.1 on the completions, diversity loss 1 / (L1(VGG relu4_1 of the two samples' holes)
# + 1e-5) x1; Adam (0, 0.9) at 5e-4 (generator) / 2e-3 (discriminator), batch 8, 20 epochs then a linear decay to
# 0 over 100 more; no EMA. SPDNorm is conditioned on the prior's raw output, as PD-GAN's pre_image
# (model.prior.composite=True: the prior's completion with the known pixels restored).
#
# What differs from PD-GAN, and the option that gives PD-GAN's behaviour (docs/reproduce.md lists them all):
# - the prior is our Base generator (base_celeba-hq_256.py's checkpoint), not PD-GAN's PConv;
# - VGG16 sees ImageNet-normalised [0, 1] images; PD-GAN feeds [-1, 1]: input_norm='none' on loss_percep and
#   loss_diversity;
# - the TV loss's row term is the neighbour difference; PD-GAN's slicing slip: loss_tv.pdgan_row_slip=True;
# - the learning rate decays every iteration, PD-GAN's once per epoch (same line, in steps).
# VGG16 weights are read from vgg_path (torchvision's vgg16-397923af.pth; nothing is downloaded).
#
#   python tools/train.py options/mmagic/inpaint/base_celeba-hq_256.py              # first: the prior
#   python tools/train.py options/mmagic/inpaint/pdgan_paper_256.py                 # -> work_dirs/pdgan_paper_256
#   python tools/train.py options/mmagic/inpaint/pdgan_paper_256.py --cfg-options \
#       model.prior.checkpoint=work_dirs/base_celeba-hq_256/iter_300000.pth \
#       model.loss_percep.vgg_path=VGG.pth model.loss_diversity.vgg_path=VGG.pth
# A generator converted from PD-GAN (tools/convert_checkpoint.py --from pdgan) starts it with load_from=OUT.pth.
_base_ = 'base_celeba-hq_256.py'

vgg_path = 'weights/vgg16-397923af.pth'
# One epoch of PD-GAN's schedule in iterations: the training images / batch 8 (CelebA-HQ's usual 28,000-image
# training split -> 3,500). Edit it here for your split (the schedule below is computed from it when the file is
# read, so --cfg-options iters_per_epoch=... would not reach it).
iters_per_epoch = 3500
niter, niter_decay = 20, 100  # PD-GAN's epochs at the full rate, then of the linear decay

model = dict(
    _delete_=True,
    type='PDGANInpaintor',
    data_preprocessor={{_base_.data_preprocessor}},
    prior=dict(generator=dict(type='InpaintEncoderDecoder', in_channels=4, base_channels=64, num_down=2,
                              dilations=(1, 2, 4, 1), norm='BN'),
               checkpoint='work_dirs/base_celeba-hq_256', composite=False),
    encdec=dict(type='SPDNormGenerator'),  # PD-GAN's 256x256 generator
    disc=dict(type='PDGANDiscriminator', img_channels=3, mask_channels=3, base_channels=64, num_layers=4,
              num_scales=2, norm='IN'),
    disc_input='raw',
    real_loss_per_sample=True,
    loss_gan=dict(type='GANLoss', gan_type='hinge', loss_weight=1.0),
    loss_disc_feat=dict(type='DiscFeatureMatchingLoss', loss_weight=10.0),
    loss_percep=dict(type='VGG16PerceptualLoss', vgg_path=vgg_path, loss_weight=10.0),
    loss_tv=dict(type='HoleTVLoss', loss_weight=0.1),
    loss_diversity=dict(type='InpaintDiversityLoss', vgg_path=vgg_path, loss_weight=1.0),
    train_cfg=dict(disc_step=1),
    test_cfg=dict(noise_seed=0))

optim_wrapper = dict(generator=dict(optimizer=dict(lr=5e-4)), disc=dict(optimizer=dict(lr=2e-3)))  # Adam (0, 0.9)
param_scheduler = dict(type='LinearLR', start_factor=1.0, end_factor=0.0, by_epoch=False,
                       begin=niter * iters_per_epoch, end=(niter + niter_decay) * iters_per_epoch)
train_cfg = dict(max_iters=(niter + niter_decay) * iters_per_epoch, val_interval=2 * iters_per_epoch)
default_hooks = dict(logger=dict(interval=50), checkpoint=dict(interval=2 * iters_per_epoch))
# PD-GAN reports FID, PSNR and SSIM; L1 (MAE x100) and TV are the seed's columns. FID: add
# dict(type='InpaintFID', inception_path='weights/inception-2015-12-05.pt').
val_evaluator = dict(type='Evaluator', metrics=[
    dict(type='MAE', mask_key='mask', scaling=100),
    dict(type='PSNR'),
    dict(type='SSIM'),
    dict(type='InpaintTV', scaling=100),
])
test_evaluator = val_evaluator
