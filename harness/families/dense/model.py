"""Dense heads on the swapped backbone: torchvision FCOS for detection, an FPN + conv head for segmentation.

MambaOut (arXiv 2405.07992) evaluates its backbones under standard detection/segmentation heads; here the
heads are torchvision's own (``FeaturePyramidNetwork``, ``FCOS``), so only the backbone's token mixer
differs between variants. ``FeaturePyramid`` is torchvision's ``BackboneWithFPN`` minus its
``IntermediateLayerGetter`` (which re-runs a backbone's children in order and so would skip our stages'
flatten/reshape): it calls ``forward_intermediates`` and feeds the stage maps to the FPN.

``forward(images)`` of both models returns the network's raw outputs (no NMS / post-processing): that is
what the spine times and counts FLOPs of, the same for every variant.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.detection import FCOS
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.fcos import FCOSHead
from torchvision.ops import Conv2dNormActivation, FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import ExtraFPNBlock, LastLevelP6P7

from harness.models.backbone import VisionBackbone

IMAGE_MEAN, IMAGE_STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)


class FeaturePyramid(nn.Module):
    """Backbone stages -> torchvision FPN maps (``out_channels`` each), as torchvision detectors expect."""

    def __init__(self, backbone: VisionBackbone, out_channels: int, extra_blocks: ExtraFPNBlock | None = None):
        super().__init__()
        self.body = backbone
        self.fpn = FeaturePyramidNetwork([f["num_chs"] for f in backbone.feature_info], out_channels, extra_blocks)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        feats = self.body.forward_intermediates(x)
        return self.fpn(OrderedDict((str(i), f) for i, f in enumerate(feats)))


class LastLevelP6(LastLevelP6P7):
    """torchvision's ``LastLevelP6P7`` stopped at P6 (same conv, init and name), for when P7 would be 1x1."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(in_channels, out_channels)
        del self.p7

    def forward(self, p: list[torch.Tensor], c: list[torch.Tensor], names: list[str]) -> tuple[list[torch.Tensor], list[str]]:
        p.append(self.p6(p[-1] if self.use_P5 else c[-1]))
        names.append("p6")
        return p, names


def extra_levels(backbone: VisionBackbone, resolution: int) -> int:
    """How many of FCOS's extra levels P6, P7 to add: those whose map is at least 2x2 at ``resolution``.

    On a 1x1 map FCOSHead's GroupNorm(32, C) has one position per channel: with one channel per group
    (C = 32) its output is constant and the level's conv gets exactly zero gradient (dead parameters that
    budget matching still counts); with a few channels per group it is a sign pattern."""
    side = math.ceil(resolution / 32) * 32  # FCOS's transform pads the batch to a multiple of 32
    p5 = math.isqrt(backbone.token_stats(side, side)[-1][0])
    p6 = math.ceil(p5 / 2)  # P6, P7: 3x3 stride-2 pad-1 convs
    p7 = math.ceil(p6 / 2)
    return int(p6 >= 2) + int(p7 >= 2)


class Detector(nn.Module):
    """torchvision FCOS (anchor-free, one anchor per location sized like the level's stride) over the
    backbone's stages + P6/P7 (those at least 2x2; ``extra_levels``). Images go in as [0, 1]; FCOS's
    transform normalises them."""

    def __init__(self, backbone: VisionBackbone, num_classes: int, resolution: int, fpn_channels: int, head_convs: int):
        super().__init__()
        strides = [f["reduction"] for f in backbone.feature_info]
        n_extra = extra_levels(backbone, resolution)
        strides += [strides[-1] * 2**k for k in range(1, n_extra + 1)]  # P6, P7
        extra = {0: None, 1: LastLevelP6, 2: LastLevelP6P7}[n_extra]
        pyramid = FeaturePyramid(backbone, fpn_channels, extra and extra(fpn_channels, fpn_channels))
        anchors = AnchorGenerator(sizes=tuple((s,) for s in strides), aspect_ratios=((1.0,),) * len(strides))
        head = FCOSHead(fpn_channels, anchors.num_anchors_per_location()[0], num_classes, num_convs=head_convs)
        self.fcos = FCOS(
            pyramid, num_classes, min_size=resolution, max_size=resolution, image_mean=list(IMAGE_MEAN),
            image_std=list(IMAGE_STD), anchor_generator=anchors, head=head, score_thresh=0.05,
        )
        self.backbone = backbone

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Raw head outputs: class logits, box regression, centerness (no post-processing)."""
        image_list, _ = self.fcos.transform(list(images))
        out = self.fcos.head(list(self.fcos.backbone(image_list.tensors).values()))
        return out["cls_logits"], out["bbox_regression"], out["bbox_ctrness"]

    def loss(self, images: torch.Tensor, targets: list[dict[str, torch.Tensor]]) -> torch.Tensor:
        """FCOS's summed losses (focal classification, GIoU boxes, centerness BCE); needs train mode."""
        losses = self.fcos(list(images), [{"boxes": t["boxes"], "labels": t["labels"]} for t in targets])
        return sum(losses.values())

    def predict(self, images: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """Post-processed detections (boxes, scores, labels) per image; needs eval mode."""
        return self.fcos(list(images))


class Segmenter(nn.Module):
    """Semantic FPN-style light head: FPN maps upsampled to stride 4 (or the finest level), summed, a 3x3
    conv-BN-ReLU, a 1x1 classifier, bilinear upsampling to the input size."""

    def __init__(self, backbone: VisionBackbone, num_classes: int, fpn_channels: int):
        super().__init__()
        self.pyramid = FeaturePyramid(backbone, fpn_channels)
        self.fuse = Conv2dNormActivation(fpn_channels, fpn_channels, 3, norm_layer=partial(nn.BatchNorm2d))
        self.classifier = nn.Conv2d(fpn_channels, num_classes, 1)
        self.backbone = backbone

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = (images - images.new_tensor(IMAGE_MEAN)[:, None, None]) / images.new_tensor(IMAGE_STD)[:, None, None]
        feats = list(self.pyramid(x).values())
        size = feats[0].shape[-2:]
        fused = sum(F.interpolate(f, size=size, mode="bilinear", align_corners=False) for f in feats)
        logits = self.classifier(self.fuse(fused))
        return F.interpolate(logits, size=images.shape[-2:], mode="bilinear", align_corners=False)
