# Seed 003, row "Base" at the seed's scale: 256x256 CelebA-HQ (or Places2: data_root) with irregular masks from a
# folder (datasets/README.md: datasets/CelebA-HQ/{train,val}/*.jpg, datasets/masks/irregular/*.png, white = hole).
# The other rows are the same deltas as their demo configs: groupnorm_celeba-hq_256.py, simam_celeba-hq_256.py,
# msssim_l1_celeba-hq_256.py; PD-GAN's own recipe at 256 (SPDNormGenerator's defaults, 186,007,171 parameters, on
# this model's checkpoint as the prior) is pdgan_paper_256.py. Adam lr 1e-4 (generator) / 4e-4 (discriminator),
# betas (0, 0.9). The generator is our design (the seed's notes give its results, not its layers).
#   python tools/train.py options/mmagic/inpaint/base_celeba-hq_256.py               # -> work_dirs/base_celeba-hq_256
_base_ = 'base_demo.py'

size = 256
data_root = 'datasets/CelebA-HQ'
mask_root = 'datasets/masks/irregular'
max_iters = 300000

load_gt = dict(type='LoadImageFromFile', key='gt', color_type='color', channel_order='rgb', imdecode_backend='cv2')
resize = dict(type='Resize', keys=['gt'], scale=(size, size), keep_ratio=False)
train_pipeline = [
    load_gt, resize,
    dict(type='Flip', keys=['gt'], flip_ratio=0.5, direction='horizontal'),
    dict(type='LoadMaskFromFolder', folder=mask_root, resize=True),
    dict(type='GetMaskedImage'),
    dict(type='PackInputs'),
]
val_pipeline = [
    load_gt, resize,
    dict(type='LoadMaskFromFolder', folder=mask_root, resize=True, fixed_per_image=True),  # the same mask each time
    dict(type='GetMaskedImage'),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=8, num_workers=4,
    dataset=dict(_delete_=True, type='BasicImageDataset', data_root=data_root, data_prefix=dict(gt='train'),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4, num_workers=2,
    dataset=dict(_delete_=True, type='BasicImageDataset', data_root=data_root, data_prefix=dict(gt='val'),
                 pipeline=val_pipeline))
test_dataloader = val_dataloader
auto_scale_lr = dict(base_batch_size=8)  # the learning rates' batch (--auto-scale-lr)

model = dict(encdec=dict(base_channels=64),
             disc=dict(base_channels=64, num_layers=4))
optim_wrapper = dict(generator=dict(optimizer=dict(lr=1e-4)), disc=dict(optimizer=dict(lr=4e-4)))
train_cfg = dict(max_iters=max_iters, val_interval=5000)
default_hooks = dict(logger=dict(interval=100), checkpoint=dict(interval=5000))
