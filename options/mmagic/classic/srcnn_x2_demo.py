# SRCNN 9-5-5 (64/32 channels) x2, RGB, trained with mmengine's Runner in MMagic's BaseEditModel on the demo
# data (python tools/data/make_demo_data.py writes datasets/demo). The network is ours ('SRCNN', registered into
# mmagic.registry.MODELS by plugins/classic/srcnn_mmagic.py, imported below); everything else is MMagic's and
# mmengine's.
#
#   python tools/train.py options/mmagic/classic/srcnn_x2_demo.py                      # -> work_dirs/srcnn_x2_demo
#   python tools/train.py options/mmagic/classic/srcnn_x2_demo.py --resume             # go on from the last checkpoint
#   torchrun --nproc_per_node=2 tools/train.py options/mmagic/classic/srcnn_x2_demo.py --launcher pytorch
#   torchrun --nnodes=2 --node_rank=0 --master_addr=10.0.0.1 --master_port=29500 --nproc_per_node=8 \
#       tools/train.py options/mmagic/classic/srcnn_x2_demo.py --launcher pytorch    # node_rank=1 on the 2nd node
#   python tools/test.py options/mmagic/classic/srcnn_x2_demo.py --checkpoint work_dirs/srcnn_x2_demo/iter_300.pth
#
# Shorter runs: --cfg-options train_cfg.max_iters=20 train_cfg.val_interval=10 default_hooks.checkpoint.interval=10
# Differences from options/train/classic/srcnn_x2.yml (BasicSR, Y channel, MSE, EMA): RGB in and out, L1 loss,
# no EMA. PSNR/SSIM are on RGB with a 2-pixel border crop.
# 300 iterations (~1 min on 2 CPU cores) show the pipeline, not SRCNN's quality: from scratch on RGB it reaches
# 27.7 dB on the demo validation set after 300 iterations and 30.1 dB after 1000, below bicubic (31.1 dB).

_base_ = '../_base_/default_runtime.py'  # scope, loops, environment, logging
custom_imports = dict(imports=['plugins.engine.mmengine.hooks', 'plugins.classic.srcnn_mmagic'],
                      allow_failed_imports=False)
scale = 2
max_iters = 300
data_root = 'datasets/demo'

model = dict(
    type='BaseEditModel',
    generator=dict(type='SRCNN', num_in_ch=3, num_feat=(64, 32), kernel_sizes=(9, 5, 5), upscale=scale),
    pixel_loss=dict(type='L1Loss', loss_weight=1.0, reduction='mean'),
    train_cfg=dict(),
    test_cfg=dict(),
    # uint8 images in, [0, 1] tensors to the network; outputs are scaled back for the metrics.
    data_preprocessor=dict(type='DataPreprocessor', mean=[0., 0., 0.], std=[255., 255., 255.]))

# --------------------------------------------------------------------------------------------------------------
# data: LR/HR pairs with the same file names; 'img' is the network input, 'gt' the target
# --------------------------------------------------------------------------------------------------------------
load_pair = [
    dict(type='LoadImageFromFile', key='img', color_type='color', channel_order='rgb', imdecode_backend='cv2'),
    dict(type='LoadImageFromFile', key='gt', color_type='color', channel_order='rgb', imdecode_backend='cv2'),
]
train_pipeline = load_pair + [
    dict(type='SetValues', dictionary=dict(scale=scale)),
    dict(type='PairedRandomCrop', gt_patch_size=48),
    dict(type='Flip', keys=['img', 'gt'], flip_ratio=0.5, direction='horizontal'),
    dict(type='Flip', keys=['img', 'gt'], flip_ratio=0.5, direction='vertical'),
    dict(type='RandomTransposeHW', keys=['img', 'gt'], transpose_ratio=0.5),
    dict(type='PackInputs'),
]
val_pipeline = load_pair + [dict(type='PackInputs')]

train_dataloader = dict(
    batch_size=16,
    num_workers=2,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type='BasicImageDataset',
        data_root=f'{data_root}/train',
        data_prefix=dict(img='LR_bicubic_sub/X2', gt='HR_sub'),
        pipeline=train_pipeline))

val_dataloader = dict(
    batch_size=1,
    num_workers=1,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='BasicImageDataset',
        data_root=f'{data_root}/val',
        data_prefix=dict(img='LR_bicubic/X2', gt='HR'),
        pipeline=val_pipeline))
test_dataloader = val_dataloader

val_evaluator = dict(
    type='Evaluator',
    metrics=[dict(type='PSNR', crop_border=scale), dict(type='SSIM', crop_border=scale)])
test_evaluator = val_evaluator

# --------------------------------------------------------------------------------------------------------------
# schedule: Adam 1e-3 with cosine annealing, as the BasicSR option file
# --------------------------------------------------------------------------------------------------------------
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=100)

optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='Adam', lr=1e-3, betas=(0.9, 0.999)))
# An explicit `end`: without it mmengine ends the schedule at the first run's max_iters, and a run resumed with
# a larger train_cfg.max_iters would keep the last learning rate.
param_scheduler = dict(type='CosineAnnealingLR', by_epoch=False, begin=0, end=max_iters, T_max=max_iters,
                       eta_min=1e-5)

# --------------------------------------------------------------------------------------------------------------
# runtime
# --------------------------------------------------------------------------------------------------------------
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=100, by_epoch=False, max_keep_ckpts=3, save_optimizer=True,
                    save_best='PSNR', rule='greater'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
)
