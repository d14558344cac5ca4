# Shared part of the inpainting demo configs (seed 003): data, schedule and runtime on the demo photos.
# 64x64 crops of datasets/demo/train/HR_sub (python tools/data/make_demo_data.py) with free-form masks drawn anew at
# every iteration; validation on the 3 demo validation photos (long-edge centre crop, resized to 64x64), each with
# 4 fixed masks (free-form and box) so that every run and every evaluation scores the same 12 holes.
# Images in [-1, 1] (DataPreprocessor 127.5/127.5), mask 1 = hole (MMagic's convention).
_base_ = '../../_base_/default_runtime.py'  # scope, loops, environment, logging
custom_imports = dict(imports=['plugins.engine.mmengine.hooks', 'plugins.inpaint'], allow_failed_imports=False)
size = 64
max_iters = 600
data_root = 'datasets/demo'

data_preprocessor = dict(type='DataPreprocessor', mean=[127.5] * 3, std=[127.5] * 3)

load_gt = dict(type='LoadImageFromFile', key='gt', color_type='color', channel_order='rgb', imdecode_backend='cv2')
train_pipeline = [
    load_gt,
    dict(type='Crop', keys=['gt'], crop_size=(size, size), random_crop=True),
    dict(type='Flip', keys=['gt'], flip_ratio=0.5, direction='horizontal'),
    dict(type='RandomInpaintMask', mode='ff'),
    dict(type='GetMaskedImage'),  # 'img' = gt outside the hole, 127.5 (0 after normalisation) inside
    dict(type='PackInputs'),
]


def val_pipeline(mode, seed):
    return [
        load_gt,
        dict(type='CenterCropLongEdge', keys=['gt']),
        dict(type='Resize', keys=['gt'], scale=(size, size), keep_ratio=False),
        dict(type='RandomInpaintMask', mode=mode, fixed_per_image=True, seed=seed),
        dict(type='GetMaskedImage'),
        dict(type='PackInputs'),
    ]


val_dataset = dict(
    type='ConcatDataset',
    datasets=[dict(type='BasicImageDataset', data_root=f'{data_root}/val', data_prefix=dict(gt='HR'),
                   pipeline=val_pipeline(mode, seed))
              for mode, seed in (('ff', 0), ('ff', 1), ('bbox', 2), ('bbox', 3))])

train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type='BasicImageDataset', data_root=f'{data_root}/train', data_prefix=dict(gt='HR_sub'),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=val_dataset)
test_dataloader = val_dataloader
# The learning rates were set for this batch on one process: `tools/train.py --auto-scale-lr` scales them to
# batch_size x processes / base_batch_size (mmengine's linear rule, as MMagic's --auto-scale-lr).
auto_scale_lr = dict(enable=False, base_batch_size=4)

# The seed's columns: L1 (MMagic's MAE on the hole, x100), PSNR, TV (x100) and FID. FID needs the Inception
# TorchScript file: add dict(type='InpaintFID', inception_path='weights/inception-2015-12-05.pt') where you have it.
val_evaluator = dict(type='Evaluator', metrics=[
    dict(type='MAE', mask_key='mask', scaling=100),  # the seed's L1 column
    dict(type='PSNR'),
    dict(type='InpaintTV', scaling=100),
])
test_evaluator = val_evaluator

train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=200)

# Generator and discriminator each have an optimizer (MMagic's multi-optimizer constructor); Adam as in PD-GAN
# (beta1 0, beta2 0.9), generator 1e-3 / discriminator 1e-3 for the short CPU schedule.
optim_wrapper = dict(
    constructor='MultiOptimWrapperConstructor',
    generator=dict(type='OptimWrapper', optimizer=dict(type='Adam', lr=1e-3, betas=(0.0, 0.9))),
    disc=dict(type='OptimWrapper', optimizer=dict(type='Adam', lr=1e-3, betas=(0.0, 0.9))))

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', interval=200, by_epoch=False, max_keep_ckpts=2, save_optimizer=True),
    sampler_seed=dict(type='DistSamplerSeedHook'),
)
# The two optimizers are wrapped separately under torchrun (one DDP per sub-network, as MMagic's GANs). Buffers are
# not broadcast at every forward (broadcast_buffers=False): BatchNorm statistics are each rank's own, over its share
# of the batch (4 crops per GPU here), and rank 0's are saved. On GPUs add --cfg-options sync_bn=torch for batch
# statistics over every rank's crops (see _base_/default_runtime.py), as the Base generator's BatchNorm (norm='BN')
# wants with small per-GPU batches; PD-GAN's generator has no BatchNorm (its frozen prior runs in eval mode).
model_wrapper_cfg = dict(type='MMSeparateDistributedDataParallel', broadcast_buffers=False,
                         find_unused_parameters=False)
