"""Evaluation of completions (MMagic METRICS), beside MMagic's ``MAE`` (the seed's L1, ``scaling=100``) and ``PSNR``:
total variation of the output and FID with Inception weights from a local file.
"""
import os.path as osp
import warnings
from typing import List, Optional, Sequence

import numpy as np
import torch
from basicsr.metrics.fid import calculate_fid
from mmagic.evaluation.metrics.base_sample_wise_metric import BaseSampleWiseMetric
from mmagic.registry import METRICS


@METRICS.register_module()
class InpaintTV(BaseSampleWiseMetric):
    """Total variation of the prediction: mean |x[:, :, j+1] - x[:, :, j]| + mean |x[:, i+1] - x[:, i]| on [0, 1]
    images, times ``scaling`` (100, the scale of MMagic's inpainting ``MAE``). Lower is smoother. The whole image
    is measured (its known pixels are the ground truth's, so differences between models come from the holes)."""

    metric = 'TV'

    def process_image(self, gt, pred, mask):
        pred = torch.as_tensor(pred, dtype=torch.float64) / 255.
        return float((pred[..., :, 1:] - pred[..., :, :-1]).abs().mean() +
                     (pred[..., 1:, :] - pred[..., :-1, :]).abs().mean())


@METRICS.register_module()
class InpaintFID(BaseSampleWiseMetric):
    """Frechet Inception distance between the completions and their ground truths (the seed's FID column).

    The feature network is a TorchScript file read from ``inception_path`` (nothing is downloaded): StyleGAN's
    ``inception-2015-12-05.pt`` (the network of the original TF FID), called as ``net(x, return_features=True)`` on
    (N, 3, H, W) uint8-valued RGB tensors, returning (N, 2048) pool features. The distance is BasicSR's public
    ``basicsr.metrics.fid.calculate_fid`` (scipy's ``sqrtm``) on the means and covariances (``np.cov``, N - 1) of
    the two feature sets. A sample-wise metric in MMagic's evaluator (its prepare/sampler hooks), though the
    distance is over the whole set. FID over a handful of images is not comparable with published numbers (those
    use thousands); it ranks runs on the same images. The network runs where the images are: it is loaded on the
    CPU and moved to the images' device (the model's, on a GPU) the first time it sees them there.

    Args:
        inception_path: the TorchScript file.
        pred_key, gt_key: keys of the prediction (in ``output``) and of the ground truth.
    """

    metric = 'FID'

    def __init__(self, inception_path: str, pred_key: str = 'pred_img', gt_key: str = 'gt_img',
                 collect_device: str = 'cpu', prefix: Optional[str] = None):
        super().__init__(gt_key=gt_key, pred_key=pred_key, collect_device=collect_device, prefix=prefix)
        if not inception_path or not osp.isfile(inception_path):
            raise FileNotFoundError(f'InpaintFID: inception_path {inception_path!r} not found: expected a local '
                                    'TorchScript Inception such as inception-2015-12-05.pt (no download at run time)')
        self.inception = torch.jit.load(inception_path, map_location='cpu').eval()
        self.inception_device = torch.device('cpu')

    @torch.no_grad()
    def _features(self, images: List[torch.Tensor]) -> np.ndarray:
        """images: (3, H, W) tensors of 0-255 values on one device. Returns (N, 2048) float64 features."""
        batch = torch.stack([img.float().clamp(0, 255).round() for img in images]).to(torch.uint8)
        if batch.device != self.inception_device:  # once per device: the network follows the data
            self.inception = self.inception.to(batch.device)
            self.inception_device = batch.device
        return self.inception(batch, return_features=True).double().cpu().numpy()

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        preds = [sample['output'][self.pred_key] for sample in data_samples]
        gts = [sample[self.gt_key] for sample in data_samples]
        for fake, real in zip(self._features(preds), self._features(gts)):
            self.results.append(dict(fake=fake, real=real))

    def compute_metrics(self, results: list) -> dict:
        if len(results) < 2:
            raise ValueError(f'InpaintFID needs at least 2 images, got {len(results)}')
        fake = np.stack([r['fake'] for r in results])
        real = np.stack([r['real'] for r in results])
        return {'FID': frechet_distance(fake, real)}


def frechet_distance(fake: np.ndarray, real: np.ndarray) -> float:
    """FID between two feature sets (N, D) and (M, D), through ``basicsr.metrics.fid.calculate_fid``.

    BasicSR 1.4.2 calls ``scipy.linalg.sqrtm(..., disp=False)``, which SciPy 1.17 deprecates (silenced here) and
    1.18 removes."""
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        return float(calculate_fid(fake.mean(0), np.cov(fake, rowvar=False), real.mean(0), np.cov(real, rowvar=False)))
