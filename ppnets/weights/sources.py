"""Where the published weights of every registered model are, and how they were evaluated.

The table behind ``pretrained=True``: for each registry name, the weights it can load, as
keyword dicts (one per weight) merged over shared per-family dicts, turned into frozen
:class:`WeightSource` records. A registered model without published weights has an entry in
:data:`NO_WEIGHTS` saying why instead -- never a guessed URL.

Sources (tests/weights/test_sources.py checks the table against them at test time):

* timm 1.0.31 (``timm.get_pretrained_cfg('<name>.<tag>')``): the tags, their order (the first
  listed is the one ``timm.create_model(name, pretrained=True)`` loads, as timm's first tag is
  its default), the Hugging Face Hub repository ``timm/<name>.<tag>``, ``num_classes``,
  ``input_size``, ``test_input_size``, ``crop_pct``, ``test_crop_pct``, ``interpolation``,
  ``mean``, ``std``, ``license``. Every tag timm has for the architecture is listed: each loads
  into our model with the entry's ``num_classes`` (distilled heads, a 21k-class head, a headless
  backbone included). The file is timm's ``model.safetensors`` at revision ``main``, what timm
  itself downloads; no hash is recorded for Hub files (the Hub serves their sha256 with them).
* ImageNet-1k top-1/top-5 of timm weights: ``results/results-imagenet.csv`` of
  huggingface/pytorch-image-models (last changed in commit 4e5207c7, 2025-10-30), the row of
  ``<name>.<tag>`` evaluated at the entry's ``input_size`` and ``crop_pct``; timm's model cards
  often quote the ``test_input_size`` row instead, which is higher.
* torchvision 0.29.1 for ShuffleNetV2 (``torchvision.models.ShuffleNet_V2_X*_Weights``): the URL,
  the sha256 prefix in its file name (what ``torch.hub`` checks), the transforms (resize, crop,
  interpolation, mean, std) and ``meta['_metrics']``.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from ppnets.registry import IMAGENET_MEAN, IMAGENET_STD, get_entry

__all__ = ["WeightSource", "WeightNotFoundError", "SOURCES", "NO_WEIGHTS", "weights_for",
           "default_weight", "find_weight", "TIMM_RESULTS"]

TIMM_RESULTS = ("huggingface/pytorch-image-models results/results-imagenet.csv (last changed in "
                "4e5207c7, 2025-10-30): the row of this <name>.<tag> at input_size and crop_pct")


class WeightNotFoundError(LookupError):
    """No weight of that model (or no weight with that tag)."""


@dataclass(frozen=True)
class WeightSource:
    """One published weight file of a registered model and how it was evaluated."""

    model: str                    # ppnets registry name
    tag: str                      # timm's pretrained tag, or torchvision's weights enum name
    default: bool                 # what the reference library loads for ``pretrained=True``
    library: str                  # "timm" or "torchvision": whose metadata this mirrors
    kind: str                     # "hf_hub" (hf_hub_id, filename, revision) or "url"
    file_format: str              # "safetensors" or "pth"
    num_classes: int              # classifier outputs; 0: a backbone without classifier
    input_size: Tuple[int, int, int]
    crop_pct: float
    interpolation: str
    mean: Tuple[float, ...]
    std: Tuple[float, ...]
    top1: Optional[float]         # ImageNet-1k top-1 (%) the source claims; None: it claims none
    top5: Optional[float]
    top1_source: str
    test_input_size: Optional[Tuple[int, int, int]] = None
    test_crop_pct: Optional[float] = None
    hf_hub_id: Optional[str] = None
    filename: Optional[str] = None
    revision: Optional[str] = None
    url: Optional[str] = None
    sha256: Optional[str] = None          # the file's full sha256 where published
    sha256_prefix: Optional[str] = None   # the hex digits in a torch.hub file name: a prefix
    distilled: bool = False               # trained with a distillation head (DeiT-style)
    license: Optional[str] = None         # timm's cfg license; None where the source names none
    notes: str = ""

    def __post_init__(self):
        if self.kind == "hf_hub":
            ok = self.hf_hub_id and self.filename and self.revision and not self.url
        elif self.kind == "url":
            ok = self.url and bool(self.sha256) != bool(self.sha256_prefix) and not self.hf_hub_id
        else:
            ok = False
        if not ok:
            raise ValueError(f"{self.model}.{self.tag}: kind {self.kind!r} needs hf_hub_id, "
                             "filename and revision ('hf_hub') or a url with exactly one of "
                             "sha256 / sha256_prefix ('url')")


# timm weights on the Hugging Face Hub; families override what differs from these.
_TIMM = dict(library="timm", kind="hf_hub", file_format="safetensors",
             filename="model.safetensors", revision="main", num_classes=1000,
             input_size=(3, 224, 224), mean=IMAGENET_MEAN, std=IMAGENET_STD,
             top1_source=TIMM_RESULTS, license="apache-2.0")
_DISTILLED = dict(distilled=True, notes="Trained with knowledge distillation: a second "
                  "classifier (head_dist) learns from a teacher; eval output = mean of both heads.")
_INPUT_0_1 = dict(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))  # inputs in [0, 1], no normalising
_INPUT_HALF = dict(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))

_DEIT = dict(_TIMM, crop_pct=0.9, interpolation="bicubic",
             notes="Not distilled: the distilled DeiT-S is timm's "
                   "deit_small_distilled_patch16_224, another architecture (distillation token).")
_EFFICIENTFORMER = dict(_TIMM, **_DISTILLED, crop_pct=0.95, interpolation="bicubic")
_FASTERNET = dict(_TIMM, crop_pct=1.0, test_crop_pct=0.9, interpolation="bicubic")
_LEVIT = dict(_TIMM, **_DISTILLED, crop_pct=0.9, interpolation="bicubic")
# timm's "ra4" MobileNet weights (3600 epochs at 224 px; timm also evaluates them at 256).
_RA4 = dict(_TIMM, **_INPUT_HALF, interpolation="bicubic", test_input_size=(3, 256, 256))
_MOBILENET = dict(_TIMM, crop_pct=0.875, interpolation="bicubic")
_MIIL = dict(_TIMM, **_INPUT_0_1, crop_pct=0.875, interpolation="bilinear")
_MOBILEONE = dict(_TIMM, crop_pct=0.9, interpolation="bilinear", license="mobileone-license")
_MOBILEVIT = dict(_TIMM, **_INPUT_0_1, input_size=(3, 256, 256), crop_pct=0.9,
                  interpolation="bicubic", license="cvnets-license")
_POOLFORMER = dict(_TIMM, crop_pct=0.9, interpolation="bicubic")
_REPVGG = dict(_TIMM, crop_pct=0.875, interpolation="bilinear", license="mit")
_REPVIT = dict(_TIMM, **_DISTILLED, crop_pct=0.95, interpolation="bicubic")
# ResNet tags by their evaluation settings: timm's "ResNet strikes back" release (arXiv:2110.00476;
# a1/a2/b1k/b2k/c1/c2/d, and a3 trained at 160 px), timm's earlier ra/ram/bt weights, and ports of
# torchvision, GluonCV and FAIR weights.
_RSB = dict(_TIMM, crop_pct=0.95, interpolation="bicubic", test_input_size=(3, 288, 288),
            test_crop_pct=1.0)
_RSB_A3 = dict(_RSB, input_size=(3, 160, 160), test_input_size=(3, 224, 224), test_crop_pct=0.95)
_TIMM_RA = dict(_TIMM, crop_pct=0.875, interpolation="bicubic", test_input_size=(3, 288, 288),
                test_crop_pct=0.95)
_TV = dict(_TIMM, crop_pct=0.875, interpolation="bilinear", license="bsd-3-clause",
           notes="torchvision's IMAGENET1K_V1 weights, re-hosted by timm.")
_GLUON = dict(_TIMM, crop_pct=0.875, interpolation="bicubic",
              notes="GluonCV ResNet-v1b weights, ported by timm.")
_FB_SEMI = dict(_TIMM, crop_pct=0.875, interpolation="bilinear", license="cc-by-nc-4.0",
                notes="FAIR semi-supervised (YFCC100M) / semi-weakly supervised (IG-1B) "
                      "pre-training, fine-tuned on ImageNet-1k (arXiv:1905.00546); "
                      "non-commercial license.")

_TORCHVISION = dict(library="torchvision", kind="url", file_format="pth", num_classes=1000,
                    input_size=(3, 224, 224), interpolation="bilinear", mean=IMAGENET_MEAN,
                    std=IMAGENET_STD, tag="IMAGENET1K_V1")
_TV_SOURCE = "torchvision 0.29.1 {}.IMAGENET1K_V1.meta['_metrics']['ImageNet-1K'] (acc@1, acc@5)"
# torchvision's transforms: resize the short side to 256 (232), centre crop 224.
_TV_ERICSUN = dict(_TORCHVISION, crop_pct=224 / 256,
                   notes="torchvision: trained from scratch to reproduce the paper closely "
                         "(recipe: github.com/ericsun99/Shufflenet-v2-Pytorch).")
_TV_NEW_RECIPE = dict(_TORCHVISION, crop_pct=224 / 232,
                notes="torchvision's new training recipe (pytorch/vision#5906).")

_TABLE: Dict[str, List[dict]] = {
    "deit_small_patch16_224": [dict(_DEIT, tag="fb_in1k", top1=79.856, top5=95.056)],
    "efficientformer_l1": [
        dict(_EFFICIENTFORMER, tag="snap_dist_in1k", top1=80.502, top5=94.992)],
    "efficientformer_l3": [
        dict(_EFFICIENTFORMER, tag="snap_dist_in1k", top1=82.562, top5=96.25)],
    "efficientformer_l7": [
        dict(_EFFICIENTFORMER, tag="snap_dist_in1k", top1=83.396, top5=96.532)],
    "efficientformerv2_s0": [
        dict(_EFFICIENTFORMER, tag="snap_dist_in1k", top1=76.102, top5=92.85)],
    "efficientformerv2_s1": [
        dict(_EFFICIENTFORMER, tag="snap_dist_in1k", top1=79.684, top5=94.712)],
    "efficientformerv2_s2": [
        dict(_EFFICIENTFORMER, tag="snap_dist_in1k", top1=82.156, top5=95.912)],
    "efficientformerv2_l": [
        dict(_EFFICIENTFORMER, tag="snap_dist_in1k", top1=83.642, top5=96.546)],
    "fasternet_t0": [dict(_FASTERNET, tag="in1k", top1=71.732, top5=90.074)],
    "fasternet_t1": [dict(_FASTERNET, tag="in1k", top1=75.922, top5=92.808)],
    "fasternet_t2": [dict(_FASTERNET, tag="in1k", top1=78.738, top5=94.332)],
    "fasternet_s": [dict(_FASTERNET, tag="in1k", top1=81.328, top5=95.678)],
    "fasternet_m": [dict(_FASTERNET, tag="in1k", top1=82.848, top5=96.388)],
    "fasternet_l": [dict(_FASTERNET, tag="in1k", top1=83.516, top5=96.658)],
    "levit_256": [dict(_LEVIT, tag="fb_dist_in1k", top1=81.506, top5=95.466)],
    "mobilenetv1_100": [dict(_RA4, tag="ra4_e3600_r224_in1k", crop_pct=0.875,
                             test_crop_pct=0.95, top1=75.388, top5=92.31)],
    "mobilenetv1_125": [dict(_RA4, tag="ra4_e3600_r224_in1k", crop_pct=0.9, test_crop_pct=1.0,
                             top1=76.92, top5=93.232)],
    "mobilenetv2_050": [dict(_MOBILENET, tag="lamb_in1k", top1=65.928, top5=86.114)],
    "mobilenetv2_100": [dict(_MOBILENET, tag="ra_in1k", top1=72.91, top5=91.0)],
    "mobilenetv2_140": [dict(_MOBILENET, tag="ra_in1k", top1=76.528, top5=93.008)],
    "mobilenetv3_large_100": [
        dict(_MOBILENET, tag="ra_in1k", top1=75.784, top5=92.528),
        dict(_RA4, tag="ra4_e3600_r224_in1k", crop_pct=0.95, test_crop_pct=1.0, top1=76.31,
             top5=92.842),
        dict(_MIIL, tag="miil_in21k_ft_in1k", top1=77.92, top5=92.894,
             notes="Alibaba MIIL ImageNet-21K-P pre-training, fine-tuned on ImageNet-1k "
                   "(arXiv:2104.10972)."),
        dict(_MIIL, tag="miil_in21k", num_classes=11221, top1=None, top5=None,
             top1_source="none: an ImageNet-21K-P classifier (11221 classes)",
             notes="Alibaba MIIL ImageNet-21K-P (winter 2021) classifier, not fine-tuned on "
                   "ImageNet-1k: build with num_classes=11221 (arXiv:2104.10972)."),
    ],
    "mobilenetv3_small_050": [dict(_MOBILENET, tag="lamb_in1k", top1=57.918, top5=80.144)],
    "mobilenetv3_small_075": [dict(_MOBILENET, tag="lamb_in1k", top1=65.284, top5=85.462)],
    "mobilenetv3_small_100": [dict(_MOBILENET, tag="lamb_in1k", top1=67.636, top5=87.638)],
    "mobileone_s0": [dict(_MOBILEONE, tag="apple_in1k", crop_pct=0.875, top1=71.398,
                          top5=89.864)],
    "mobileone_s1": [dict(_MOBILEONE, tag="apple_in1k", top1=75.76, top5=92.788)],
    "mobileone_s2": [dict(_MOBILEONE, tag="apple_in1k", top1=77.504, top5=93.664)],
    "mobileone_s3": [dict(_MOBILEONE, tag="apple_in1k", top1=78.002, top5=93.864)],
    "mobileone_s4": [dict(_MOBILEONE, tag="apple_in1k", top1=79.446, top5=94.49)],
    "mobilevit_xxs": [dict(_MOBILEVIT, tag="cvnets_in1k", top1=68.936, top5=88.942)],
    "mobilevit_xs": [dict(_MOBILEVIT, tag="cvnets_in1k", top1=74.618, top5=92.35)],
    "mobilevit_s": [dict(_MOBILEVIT, tag="cvnets_in1k", top1=78.298, top5=94.168)],
    "poolformer_s12": [dict(_POOLFORMER, tag="sail_in1k", top1=77.238, top5=93.538)],
    "poolformer_s24": [dict(_POOLFORMER, tag="sail_in1k", top1=80.294, top5=95.06)],
    "poolformer_s36": [dict(_POOLFORMER, tag="sail_in1k", top1=81.428, top5=95.442)],
    "repvgg_a0": [dict(_REPVGG, tag="rvgg_in1k", top1=72.426, top5=90.506)],
    "repvgg_a1": [dict(_REPVGG, tag="rvgg_in1k", top1=74.474, top5=91.852)],
    "repvgg_a2": [dict(_REPVGG, tag="rvgg_in1k", top1=76.488, top5=93.016)],
    "repvgg_b0": [dict(_REPVGG, tag="rvgg_in1k", top1=75.158, top5=92.41)],
    "repvgg_b1": [dict(_REPVGG, tag="rvgg_in1k", top1=78.37, top5=94.106)],
    "repvgg_b1g4": [dict(_REPVGG, tag="rvgg_in1k", top1=77.608, top5=93.846)],
    "repvgg_b2": [dict(_REPVGG, tag="rvgg_in1k", top1=78.788, top5=94.414)],
    "repvgg_b2g4": [dict(_REPVGG, tag="rvgg_in1k", top1=79.396, top5=94.68)],
    "repvgg_b3": [dict(_REPVGG, tag="rvgg_in1k", top1=80.528, top5=95.254)],
    "repvgg_b3g4": [dict(_REPVGG, tag="rvgg_in1k", top1=80.224, top5=95.1)],
    "repvit_m0_9": [dict(_REPVIT, tag="dist_300e_in1k", top1=78.652, top5=94.114),
                    dict(_REPVIT, tag="dist_450e_in1k", top1=79.058, top5=94.388)],
    "repvit_m1_0": [dict(_REPVIT, tag="dist_300e_in1k", top1=80.152, top5=94.77),
                    dict(_REPVIT, tag="dist_450e_in1k", top1=80.43, top5=94.922)],
    "repvit_m1_1": [dict(_REPVIT, tag="dist_300e_in1k", top1=80.826, top5=95.174),
                    dict(_REPVIT, tag="dist_450e_in1k", top1=81.314, top5=95.568)],
    "repvit_m1_5": [dict(_REPVIT, tag="dist_300e_in1k", top1=82.382, top5=96.026),
                    dict(_REPVIT, tag="dist_450e_in1k", top1=82.52, top5=96.112)],
    "repvit_m2_3": [dict(_REPVIT, tag="dist_300e_in1k", top1=83.524, top5=96.532),
                    dict(_REPVIT, tag="dist_450e_in1k", top1=83.746, top5=96.65)],
    "resnet18": [
        dict(_RSB, tag="a1_in1k", top1=71.504, top5=90.086),
        dict(_RSB, tag="a2_in1k", top1=70.634, top5=89.486),
        dict(_RSB_A3, tag="a3_in1k", top1=65.67, top5=86.268),
        dict(_TV, tag="tv_in1k", top1=69.752, top5=89.082),
        dict(_FB_SEMI, tag="fb_ssl_yfcc100m_ft_in1k", top1=72.636, top5=91.416),
        dict(_FB_SEMI, tag="fb_swsl_ig1b_ft_in1k", top1=73.286, top5=91.754),
        dict(_GLUON, tag="gluon_in1k", top1=70.844, top5=89.75),
    ],
    "resnet34": [
        dict(_RSB, tag="a1_in1k", top1=76.42, top5=92.896),
        dict(_RSB, tag="a2_in1k", top1=75.52, top5=92.454),
        dict(_RSB_A3, tag="a3_in1k", top1=70.58, top5=89.54),
        dict(_TIMM_RA, tag="bt_in1k", top1=75.176, top5=92.166),
        dict(_RSB, **_INPUT_HALF, tag="ra4_e3600_r224_in1k", crop_pct=0.9, top1=77.492,
             top5=93.498),
        dict(_TV, tag="tv_in1k", top1=73.298, top5=91.422),
        dict(_GLUON, tag="gluon_in1k", top1=74.574, top5=91.988),
    ],
    "resnet50": [
        dict(_RSB, tag="a1_in1k", top1=80.382, top5=94.598),
        dict(_RSB, tag="a1h_in1k", input_size=(3, 176, 176), test_input_size=(3, 224, 224),
             crop_pct=0.9, top1=79.264, top5=94.498),
        dict(_RSB, tag="a2_in1k", top1=79.828, top5=94.56),
        dict(_RSB_A3, tag="a3_in1k", top1=75.994, top5=92.494),
        dict(_RSB, tag="b1k_in1k", top1=79.564, top5=94.622),
        dict(_RSB, tag="b2k_in1k", top1=79.388, top5=94.58),
        dict(_RSB, tag="c1_in1k", top1=79.766, top5=94.954),
        dict(_RSB, tag="c2_in1k", top1=79.868, top5=94.862),
        dict(_RSB, tag="d_in1k", top1=79.904, top5=94.666),
        dict(_TIMM_RA, tag="ram_in1k", top1=79.034, top5=94.386),
        dict(_TIMM, tag="am_in1k", crop_pct=0.875, interpolation="bicubic", top1=79.004,
             top5=94.392),
        dict(_TIMM_RA, tag="ra_in1k", top1=78.82, top5=94.314),
        dict(_TIMM_RA, tag="bt_in1k", top1=78.444, top5=94.274),
        dict(_TV, tag="tv_in1k", top1=76.156, top5=92.866),
        dict(_TV, tag="tv2_in1k", input_size=(3, 176, 176), test_input_size=(3, 224, 224),
             test_crop_pct=0.965, top1=79.434, top5=94.64,
             notes="torchvision's IMAGENET1K_V2 weights (its 2021 recipe), re-hosted by timm."),
        dict(_TIMM, tag="bamboo", num_classes=0, crop_pct=1.0, interpolation="bicubic",
             license=None, top1=None, top5=None,
             top1_source="none: a backbone without classifier",
             notes="Bamboo pre-training (arXiv:2203.07845), no classifier (timm's cfg: "
                   "num_classes=0): build with num_classes=0 and fine-tune a head. timm's cfg "
                   "names no license."),
        dict(_FB_SEMI, tag="fb_ssl_yfcc100m_ft_in1k", top1=79.252, top5=94.826),
        dict(_FB_SEMI, tag="fb_swsl_ig1b_ft_in1k", top1=81.146, top5=95.98),
        dict(_GLUON, tag="gluon_in1k", top1=77.58, top5=93.704),
    ],
    "shufflenet_v2_x0_5": [dict(
        _TV_ERICSUN, url="https://download.pytorch.org/models/shufflenetv2_x0.5-f707e7126e.pth",
        sha256_prefix="f707e7126e", top1=60.552, top5=81.746,
        top1_source=_TV_SOURCE.format("ShuffleNet_V2_X0_5_Weights"))],
    "shufflenet_v2_x1_0": [dict(
        _TV_ERICSUN, url="https://download.pytorch.org/models/shufflenetv2_x1-5666bf0f80.pth",
        sha256_prefix="5666bf0f80", top1=69.362, top5=88.316,
        top1_source=_TV_SOURCE.format("ShuffleNet_V2_X1_0_Weights"))],
    "shufflenet_v2_x1_5": [dict(
        _TV_NEW_RECIPE, url="https://download.pytorch.org/models/shufflenetv2_x1_5-3c479a10.pth",
        sha256_prefix="3c479a10", top1=72.996, top5=91.086,
        top1_source=_TV_SOURCE.format("ShuffleNet_V2_X1_5_Weights"))],
    "shufflenet_v2_x2_0": [dict(
        _TV_NEW_RECIPE, url="https://download.pytorch.org/models/shufflenetv2_x2_0-8be3c8ee.pth",
        sha256_prefix="8be3c8ee", top1=76.23, top5=93.006,
        top1_source=_TV_SOURCE.format("ShuffleNet_V2_X2_0_Weights"))],
}

_NO_CIFAR_REFERENCE = ("timm and torchvision have no CIFAR models. Third-party CIFAR-10 "
                       "checkpoints of this name exist (other trainings, other key layouts); none "
                       "was checked against this architecture, so none is recorded.")
_SPCONV_CIFAR = ("CIFAR-10 model of the SPConv paper (arXiv:2006.12085): its official repository "
                 "(github.com/qiulinzhang/SPConv.pytorch) publishes no trained weights (its "
                 "README links none). " + _NO_CIFAR_REFERENCE)
_REPVGG_G2 = ("timm 1.0.31 has no RepVGG g2 variant. The official RepVGG-{}g2-train.pth "
              "(github.com/DingXiaoH/RepVGG README) is published only in a Google Drive folder and "
              "on Baidu Cloud: no stable URL or published hash to record; its key layout "
              "(stage1.0.rbr_dense.conv...) is also not one of this family's key maps (timm).")
_TIMM_UNTRAINED = ("timm 1.0.31 registers {} without trained weights (its only tag is "
                   "'untrained') and torchvision has {} at width 1.0 only. ")

# Registered models with no published weights they can load, and why.
NO_WEIGHTS: Dict[str, str] = {
    "mobilenetv2_075": _TIMM_UNTRAINED.format("mobilenetv2_075", "MobileNetV2") + (
        "The official width-0.75 checkpoint (tensorflow/models research/slim, "
        "mobilenet_v2_0.75_224, the source of model_info's figures) is a TensorFlow checkpoint, "
        "not a state dict of this layout."),
    "mobilenetv3_large_075": _TIMM_UNTRAINED.format("mobilenetv3_large_075", "MobileNetV3") + (
        "timm's tf_mobilenetv3_large_075.in1k (ported from the official TF checkpoint) is another "
        "network: TF 'same' padding and BatchNorm eps 1e-3."),
    "repvgg_b1g2": _REPVGG_G2.format("B1"),
    "repvgg_b2g2": _REPVGG_G2.format("B2"),
    "repvgg_b3g2": _REPVGG_G2.format("B3"),
    "shufflenet_v1_g3_x1_0": (
        "Neither timm nor torchvision implements ShuffleNetV1. The official weights "
        "(github.com/megvii-model/ShuffleNet-Series README, 'Trained Models') are one OneDrive "
        "folder link: no per-file URL or published hash that could be verified, so none is "
        "recorded; this family has no key map for the official layout either."),
    "spconv_resnet18": (
        "The SPConv paper (arXiv:2006.12085) reports no ResNet-18 and its official repository "
        "(github.com/qiulinzhang/SPConv.pytorch) publishes no trained weights (its README links "
        "none); timm and torchvision have no SPConv models."),
    "spconv_resnet20_cifar_a2": _SPCONV_CIFAR,
    "spconv_resnet20_cifar_a4": _SPCONV_CIFAR,
    "spconv_vgg16_cifar_a2": _SPCONV_CIFAR,
    "spconv_vgg16_cifar_a4": _SPCONV_CIFAR,
    "spconv_vgg16_cifar_a8": _SPCONV_CIFAR,
    "spconv_vgg16_cifar_a16": _SPCONV_CIFAR,
    "resnet20_cifar": ("CIFAR-10 baseline of the SPConv paper (arXiv:2006.12085); its official "
                       "repository publishes no weights. " + _NO_CIFAR_REFERENCE),
    "vgg16_cifar": ("CIFAR-10 baseline of the SPConv paper (arXiv:2006.12085); its official "
                    "repository publishes no weights. " + _NO_CIFAR_REFERENCE),
}


def _hub_id(model: str, spec: dict) -> dict:
    # timm's cfgs say hf_hub_id='timm/', which timm completes to timm/<name>.<tag>.
    return {"hf_hub_id": f"timm/{model}.{spec['tag']}"} if spec["kind"] == "hf_hub" else {}


SOURCES: Dict[str, Tuple[WeightSource, ...]] = {
    model: tuple(WeightSource(model=model, default=i == 0, **_hub_id(model, spec), **spec)
                 for i, spec in enumerate(specs))
    for model, specs in _TABLE.items()
}


def _resolve(name: str) -> str:
    """The registry name of ``name`` (an alias resolves; an unknown name raises with close
    matches), which must have a row here."""
    model = get_entry(name).name
    if model not in SOURCES and model not in NO_WEIGHTS:
        raise WeightNotFoundError(
            f"model {model!r} is registered but has no row in ppnets/weights/sources.py: add its "
            "published weights to _TABLE, or to NO_WEIGHTS with the reason there are none")
    return model


def weights_for(name: str) -> List[WeightSource]:
    """Every published weight ``name`` can load, the default first; ``[]`` where there is none
    (:data:`NO_WEIGHTS` says why)."""
    return list(SOURCES.get(_resolve(name), ()))


def default_weight(name: str) -> WeightSource:
    """The weight the reference library loads for ``pretrained=True``."""
    model = _resolve(name)
    if model in NO_WEIGHTS:
        raise WeightNotFoundError(f"{model} has no published weights: {NO_WEIGHTS[model]}")
    return SOURCES[model][0]


def find_weight(name: str, tag: str) -> WeightSource:
    """The weight of ``name`` with ``tag`` (timm's tag, torchvision's enum name)."""
    weights = {w.tag: w for w in weights_for(name)}
    if tag in weights:
        return weights[tag]
    model = _resolve(name)
    if not weights:
        raise WeightNotFoundError(f"{model} has no published weights: {NO_WEIGHTS[model]}")
    close = difflib.get_close_matches(tag, list(weights), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise WeightNotFoundError(f"{model} has no weight tagged {tag!r}.{hint} Its tags: "
                              f"{', '.join(weights)} (default {next(iter(weights))!r}).")
