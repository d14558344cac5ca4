# Runtime settings shared by every mmengine config of this package (inherit with `_base_`): MMagic's scope, the
# validation/test loops, a CPU-friendly environment, logging and the non-finite guard. The schedule, the other hooks
# and the data are the configs' own.
default_scope = 'mmagic'
# Our modules the config needs, imported by mmengine's Config (so MMagic's own tools/train.py finds them too): the
# hooks below; a config that uses a research line's components adds that line's module (plugins.inpaint, ...).
custom_imports = dict(imports=['plugins.engine.mmengine.hooks'], allow_failed_imports=False)

val_cfg = dict(type='MultiValLoop')
test_cfg = dict(type='MultiTestLoop')

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # backend: plugins.compat switches to gloo on machines without CUDA. timeout (seconds): how long a rank waits in a
    # collective before the run fails. Validation and the checkpoint saves run on rank 0 while the other ranks wait
    # in the next collective; torch's default (10 min for nccl) ends long validations, 30 min does not.
    dist_cfg=dict(backend='nccl', timeout=1800),
)
# diff_rank_seed: each process of a torchrun run seeds its generators with seed + rank, so that the ranks draw
# different masks, crops and noise (with one seed they all drew the same ones). The model still starts the same on
# every rank (mmengine broadcasts rank 0's weights and buffers before training) and the ranks' data shards come
# from one shuffling seed; TorchRandomStateHook keeps every rank's random state in the checkpoints.
randomness = dict(seed=0, diff_rank_seed=True)
# sync_bn='torch' (e.g. --cfg-options sync_bn=torch) turns BatchNorm layers into torch's SyncBatchNorm under a
# launcher, so that batch statistics are over the whole batch of all GPUs, not each GPU's share. GPUs only (torch's
# SyncBatchNorm has no CPU implementation); a single process keeps plain BatchNorm.
sync_bn = None
log_level = 'INFO'
# Merged into every config's default_hooks (plugins/engine/mmengine/hooks.py). nonfinite_guard: a NaN/Inf loss or gradient
# skips the step; `patience` such iterations in a row save the last good weights and stop the run (0 turns it off).
# torch_random_state: checkpoints carry torch's random state, so that --resume continues a run bit for bit.
# process_group: a distributed run logs the backend it actually uses (gloo on CPU processes, whatever dist_cfg says).
default_hooks = dict(nonfinite_guard=dict(type='NonFiniteGuardHook', patience=10),
                     torch_random_state=dict(type='TorchRandomStateHook'),
                     process_group=dict(type='ProcessGroupLogHook'))
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=False)
# Where the logged scalars (losses, learning rates, validation metrics) go besides the log: scalars.json
# (LocalVisBackend) and TensorBoard events (TensorboardVisBackend), both in work_dirs/<config>/<timestamp>/vis_data/;
# `tensorboard --logdir work_dirs` shows every run. With wandb installed (pip install ".[wandb]") add
# dict(type='WandbVisBackend', init_kwargs=dict(project='...')).
vis_backends = [dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')]
visualizer = dict(type='Visualizer', vis_backends=vis_backends)
load_from = None
resume = False
