# Runtime settings shared by every mmengine config of this package (inherit with `_base_`): MMagic's scope, the
# validation/test loops, a CPU-friendly environment and logging. The schedule, hooks and data are the configs' own.
default_scope = 'mmagic'

val_cfg = dict(type='MultiValLoop')
test_cfg = dict(type='MultiTestLoop')

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),  # plugins.compat switches to gloo on machines without CUDA
)
randomness = dict(seed=0)
log_level = 'INFO'
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=False)
load_from = None
resume = False
