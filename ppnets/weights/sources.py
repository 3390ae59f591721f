"""INTERIM (replaced by the full table): published weights of a few variants."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple


@dataclass(frozen=True)
class WeightSource:
    model: str
    tag: str
    kind: str
    default: bool = False
    hf_hub_id: Optional[str] = None
    filename: Optional[str] = None
    revision: str = "main"
    url: Optional[str] = None
    sha256: Optional[str] = None
    sha256_prefix: Optional[str] = None
    file_format: str = "safetensors"
    num_classes: int = 1000
    input_size: Tuple[int, int, int] = (3, 224, 224)
    crop_pct: float = 0.875
    interpolation: str = "bilinear"
    top1: Optional[float] = None
    top1_source: Optional[str] = None
    notes: str = ""


_TABLE = [
    WeightSource("fasternet_t0", "in1k", "hf_hub", True, "timm/fasternet_t0.in1k",
                 "model.safetensors", crop_pct=0.9, interpolation="bicubic"),
    WeightSource("repvgg_a0", "rvgg_in1k", "hf_hub", True, "timm/repvgg_a0.rvgg_in1k",
                 "model.safetensors", crop_pct=0.875, interpolation="bilinear"),
    WeightSource("mobileone_s0", "apple_in1k", "hf_hub", True, "timm/mobileone_s0.apple_in1k",
                 "model.safetensors", crop_pct=0.875, interpolation="bilinear"),
    WeightSource("shufflenet_v2_x0_5", "IMAGENET1K_V1", "url", True,
                 url="https://download.pytorch.org/models/shufflenetv2_x0.5-f707e7126e.pth",
                 sha256_prefix="f707e7126e", file_format="pth"),
]


def weights_for(name: str) -> List[WeightSource]:
    return [w for w in _TABLE if w.model == name]


def default_weight(name: str) -> WeightSource:
    for w in weights_for(name):
        if w.default:
            return w
    raise KeyError(f"{name} has no published weights")


def find_weight(name: str, tag: str) -> WeightSource:
    for w in weights_for(name):
        if w.tag == tag:
            return w
    raise KeyError(f"{name} has no weights tagged {tag!r}; tags: "
                   f"{[w.tag for w in weights_for(name)]}")
