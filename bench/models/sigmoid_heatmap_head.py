"""A HeatmapHead whose K maps are probabilities: CornerNet's keypoint-map head."""
import math
from typing import Sequence, Union

from torch import Tensor, nn

from mmpose.models.heads import HeatmapHead
from mmpose.registry import MODELS
from mmpose.utils.typing import Features


@MODELS.register_module()
class SigmoidHeatmapHead(HeatmapHead):
    """:class:`HeatmapHead` (same trunk, same arguments, same flip test and decoding) whose
    output is ``clamp(sigmoid(logits), eps, 1 - eps)``: K per-pixel keypoint probabilities, as
    CornerNet's heatmaps (``_sigmoid`` there, ``TruncSigmoid`` in MMPose's CID head).

    Why a head and not only a loss: MMPose's ``FocalHeatmapLoss`` takes ``log(output)`` and
    ``log(1 - output)``, so it needs outputs in (0, 1); and the decoder must see the same maps
    the loss trained (DARK's Taylor step works on the log of the map, which is meaningless on
    raw logits). The clamp keeps both logs finite (CornerNet's 1e-4).

    The final layer's bias starts at ``log(prior / (1 - prior))``, so every pixel starts at
    probability ``prior`` (CornerNet / RetinaNet's focal-loss initialisation; with MMPose's
    zero bias every pixel would start at 0.5 and the background terms would swamp the first
    steps).

    Args:
        eps (float): the clamp. Defaults to 1e-4
        prior (float): the initial probability of every pixel. Defaults to 0.1
        **kwargs: :class:`HeatmapHead`'s arguments
    """

    def __init__(self, in_channels: Union[int, Sequence[int]], out_channels: int,
                 eps: float = 1e-4, prior: float = 0.1, **kwargs):
        super().__init__(in_channels, out_channels, **kwargs)
        if not 0 < eps < 0.5 or not 0 < prior < 1:
            raise ValueError(f'SigmoidHeatmapHead: eps={eps} must be in (0, 0.5) and '
                             f'prior={prior} in (0, 1)')
        self.eps = float(eps)
        self.prior = float(prior)

    def init_weights(self) -> None:
        super().init_weights()
        bias = getattr(self.final_layer, 'bias', None)
        if isinstance(bias, Tensor):
            nn.init.constant_(bias, math.log(self.prior / (1 - self.prior)))

    def forward(self, feats: Features) -> Tensor:
        """(B, K, H, W) probabilities in [eps, 1 - eps]."""
        return super().forward(feats).sigmoid().clamp(self.eps, 1 - self.eps)
