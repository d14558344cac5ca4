"""Losses of the classic SR line (seed 002), registered in BasicSR's ``LOSS_REGISTRY``.

``LocalVGGPerceptualLoss`` is BasicSR's ``PerceptualLoss`` (same options, same ``(percep, style)`` result, so
``SRGANModel`` uses it as ``perceptual_opt``) with VGG weights read from a local file named in the options.
BasicSR 1.4.2's ``VGGFeatureExtractor`` reads ``experiments/pretrained_models/vgg19-dcbb9e9d.pth`` when it exists
and otherwise calls torchvision's ``vgg19(pretrained=True)``, which downloads (deprecated since torchvision 0.13,
still accepted by 0.29 with a warning); it also builds the whole VGG including its 120M-parameter classifier,
and its ``criterion: l2`` raises ``AttributeError`` (``torch.nn.L2loss`` does not exist). This loss never
downloads, builds only the convolutional layers it needs and maps ``l2`` to ``MSELoss``.
"""
import os.path as osp
from collections import OrderedDict
from typing import Dict

import torch
from torch import nn
from torchvision.models import get_model_weights
from torchvision.models import vgg as tv_vgg

from basicsr.archs.vgg_arch import NAMES, VGGFeatureExtractor, insert_bn
from basicsr.losses.basic_loss import PerceptualLoss
from basicsr.utils.registry import LOSS_REGISTRY

VGG_CFG = {'vgg11': 'A', 'vgg13': 'B', 'vgg16': 'D', 'vgg19': 'E'}  # torchvision.models.vgg.cfgs keys
CRITERIA = {'l1': nn.L1Loss, 'l2': nn.MSELoss, 'fro': None}


def vgg_layer_names(vgg_type: str) -> list:
    """BasicSR's names of the layers of torchvision's ``<vgg_type>.features`` ('conv1_1', 'relu1_1', ...)."""
    base = vgg_type.replace('_bn', '')
    if base not in VGG_CFG:
        raise ValueError(f"vgg_type must be one of {sorted(VGG_CFG) + [k + '_bn' for k in sorted(VGG_CFG)]}, "
                         f'got {vgg_type!r}')
    return insert_bn(NAMES[base]) if vgg_type.endswith('_bn') else list(NAMES[base])


def missing_weights_message(path: str, vgg_type: str) -> str:
    """How to provide the VGG weights when ``vgg_weights_path`` does not exist."""
    try:
        url = get_model_weights(vgg_type).IMAGENET1K_V1.url
    except (ValueError, AttributeError):
        url = f"torchvision's {vgg_type} ImageNet weights"
    return (f"LocalVGGPerceptualLoss: vgg_weights_path {path!r} does not exist (relative paths are read from "
            f'{osp.abspath(".")}). This loss never downloads. Download {url} on a machine with internet, put the '
            f'file at {path} (or point perceptual_opt:vgg_weights_path to it), or remove perceptual_opt from the '
            'options to train without a perceptual loss.')


def load_vgg_features(path: str, vgg_type: str, num_layers: int) -> nn.Sequential:
    """torchvision's ``<vgg_type>.features[:num_layers]`` with the weights of a local file.

    Args:
        path (str): A torchvision VGG state dict (keys ``features.N.weight``, ``classifier.*`` ignored) or a
            state dict of the features only (keys ``N.weight``). Layers deeper than ``num_layers`` may be absent.
        vgg_type (str): 'vgg11', 'vgg13', 'vgg16', 'vgg19' or their '_bn' forms.
        num_layers (int): How many layers of ``features`` to keep (convolutions, norms, ReLUs and poolings).

    Returns:
        nn.Sequential: The truncated features with the file's weights.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(missing_weights_message(path, vgg_type))
    state = torch.load(path, map_location='cpu', weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f'LocalVGGPerceptualLoss: {path} holds a {type(state).__name__}, expected a VGG state dict')
    if any(str(k).startswith('features.') for k in state):
        state = {k[len('features.'):]: v for k, v in state.items() if str(k).startswith('features.')}
    features = tv_vgg.make_layers(tv_vgg.cfgs[VGG_CFG[vgg_type.replace('_bn', '')]],
                                  batch_norm=vgg_type.endswith('_bn'))[:num_layers]
    names = vgg_layer_names(vgg_type)
    expected = features.state_dict()
    missing = [k for k in expected if k not in state]
    if missing:
        where = [f"{k} ({names[int(k.split('.')[0])]})" for k in missing]
        raise ValueError(f'LocalVGGPerceptualLoss: {path} lacks {len(missing)} of the {len(expected)} tensors that '
                         f"the {vgg_type} layers up to {names[num_layers - 1]} need: {', '.join(where[:8])}"
                         f"{' ...' if len(where) > 8 else ''}. Expected torchvision's {vgg_type} state dict (keys "
                         "'features.N.weight') or a state dict of its features only (keys 'N.weight'); found keys "
                         f"{', '.join(list(map(str, state))[:6]) or 'none'}. Check that vgg_type fits the file.")
    wrong = [
        f'{k} {tuple(state[k].shape)} instead of {tuple(v.shape)}' for k, v in expected.items()
        if tuple(state[k].shape) != tuple(v.shape)
    ]
    if wrong:
        raise ValueError(f"LocalVGGPerceptualLoss: {path} does not fit torchvision's {vgg_type}: "
                         f"{'; '.join(wrong[:4])}")
    features.load_state_dict({k: state[k] for k in expected})
    return features


class LocalVGGFeatureExtractor(VGGFeatureExtractor):
    """BasicSR's ``VGGFeatureExtractor`` (its ``forward``: a dict of the named layers' outputs) built from a local
    weights file; frozen and always in eval mode.

    ``VGGFeatureExtractor.__init__`` is not called: it is the part that downloads.

    Args:
        layer_name_list (list[str]): Layers whose outputs ``forward`` returns, e.g. ['conv5_4'].
        vgg_weights_path (str): Local weights file, see ``load_vgg_features``.
        vgg_type (str): Default: 'vgg19'.
        use_input_norm (bool): Normalise the [0, 1] input with ImageNet's mean and std. Default: True.
        range_norm (bool): Map a [-1, 1] input to [0, 1] first. Default: False.
    """

    def __init__(self,
                 layer_name_list,
                 vgg_weights_path: str,
                 vgg_type: str = 'vgg19',
                 use_input_norm: bool = True,
                 range_norm: bool = False):
        nn.Module.__init__(self)
        names = vgg_layer_names(vgg_type)
        unknown = [n for n in layer_name_list if n not in names]
        if unknown or not layer_name_list:
            raise ValueError(f'LocalVGGPerceptualLoss: layer_weights names {unknown or "no layer"}; {vgg_type} has '
                             f"{', '.join(names)}")
        self.layer_name_list = list(layer_name_list)
        self.use_input_norm = use_input_norm
        self.range_norm = range_norm
        self.names = names
        num_layers = max(names.index(n) for n in layer_name_list) + 1
        features = load_vgg_features(vgg_weights_path, vgg_type, num_layers)
        self.vgg_net = nn.Sequential(OrderedDict(zip(names, features)))
        for param in self.parameters():
            param.requires_grad = False
        if use_input_norm:
            self.register_buffer('mean', torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
            self.register_buffer('std', torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
        self.eval()

    def train(self, mode: bool = True):
        """Stay in eval mode (fixed BatchNorm statistics for the '_bn' types), whatever the training loop asks."""
        return super().train(False)


@LOSS_REGISTRY.register()
class LocalVGGPerceptualLoss(PerceptualLoss):
    """Perceptual and style loss on frozen VGG features, with the weights read from ``vgg_weights_path``.

    ``forward(x, gt)`` is BasicSR's ``PerceptualLoss.forward``: x and gt ``(N, 3, H, W)`` RGB in [0, 1] (or [-1, 1]
    with ``range_norm``); returns ``(percep_loss, style_loss)``, each a scalar tensor or None when its weight is 0.
    Gradients flow to ``x``, never to the VGG.

    Args:
        layer_weights (dict): Layer name -> weight, e.g. {'conv5_4': 1.0} (the feature before relu5_4). Names are
            ``basicsr.archs.vgg_arch.NAMES``; only the layers up to the deepest one are built and loaded.
        vgg_weights_path (str): Local file with torchvision's ImageNet VGG weights, e.g.
            experiments/pretrained_models/vgg19-dcbb9e9d.pth (``features.*`` keys, or the features only).
        vgg_type (str): 'vgg11', 'vgg13', 'vgg16', 'vgg19' or a '_bn' form; must fit the file. Default: 'vgg19'.
        use_input_norm (bool): ImageNet mean/std normalisation of the input. Default: True.
        range_norm (bool): Map [-1, 1] inputs to [0, 1] first. Default: False.
        perceptual_weight (float): Weight of the feature loss; 0 disables it. Default: 1.0.
        style_weight (float): Weight of the Gram-matrix style loss; 0 disables it. Default: 0.
        criterion (str): 'l1', 'l2' (mean squared error) or 'fro' (Frobenius norm). Default: 'l1'.
    """

    def __init__(self,
                 layer_weights: Dict[str, float],
                 vgg_weights_path: str,
                 vgg_type: str = 'vgg19',
                 use_input_norm: bool = True,
                 range_norm: bool = False,
                 perceptual_weight: float = 1.0,
                 style_weight: float = 0.,
                 criterion: str = 'l1'):
        nn.Module.__init__(self)  # PerceptualLoss.__init__ would build the downloading VGGFeatureExtractor
        if not isinstance(layer_weights, dict) or not layer_weights:
            raise ValueError(f"LocalVGGPerceptualLoss: layer_weights must be a mapping like {{'conv5_4': 1.0}}, "
                             f'got {layer_weights!r}')
        if criterion not in CRITERIA:
            raise ValueError(f'LocalVGGPerceptualLoss: criterion must be one of {list(CRITERIA)}, got {criterion!r}')
        if not vgg_weights_path:
            raise ValueError(missing_weights_message(str(vgg_weights_path), vgg_type))
        self.perceptual_weight = perceptual_weight
        self.style_weight = style_weight
        self.layer_weights = dict(layer_weights)
        self.vgg = LocalVGGFeatureExtractor(list(layer_weights), vgg_weights_path, vgg_type, use_input_norm, range_norm)
        self.criterion_type = criterion
        self.criterion = CRITERIA[criterion]() if CRITERIA[criterion] else None
