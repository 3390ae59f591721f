"""The papers' latency figures, as sourced data: one entry per published number.

Each entry: ``paper`` (key into :data:`PAPERS`), ``table`` (where in the paper), ``item`` (the
row, in the study's own label), ``setting`` (the column: complexity level, width, ...),
``device`` (the paper's device and run setting), ``value``, ``unit``, and ``verified``.

``verified`` says whether the number was checked against the paper's PDF when it was entered.
The abstract and in-text figures were checked against the arXiv abstracts / text; the table cells
marked ``verified=False`` were transcribed without the PDF at hand (no network on the machines
that wrote this file). Every study prints the flag beside the number, and the studies compare
*orderings and ratios*, which survive a small transcription error, rather than absolute values,
which depend on the device anyway. Check the flagged cells against the PDFs (arXiv ids below)
and set ``verified=True`` entry by entry.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

__all__ = ["PAPERS", "PUBLISHED", "lookup", "value"]

PAPERS: Dict[str, Dict[str, str]] = {
    "fasternet": {"title": "Run, Don't Walk: Chasing Higher FLOPS for Faster Neural Networks "
                           "(Chen et al., CVPR 2023)", "arxiv": "2303.03667"},
    "shufflenetv2": {"title": "ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture "
                              "Design (Ma et al., ECCV 2018)", "arxiv": "1807.11164"},
    "mobileone": {"title": "MobileOne: An Improved One millisecond Mobile Backbone "
                           "(Vasu et al., CVPR 2023)", "arxiv": "2206.04040"},
    "efficientformer": {"title": "EfficientFormer: Vision Transformers at MobileNet Speed "
                                 "(Li et al., NeurIPS 2022)", "arxiv": "2206.01191"},
}

# Devices as the papers describe their runs.
_SV2_GPU = "NVIDIA GTX 1080Ti, cuDNN 7.0, batch 8"
_SV2_ARM = "Qualcomm Snapdragon 810, single thread, batch 1"
_MO_PHONE = "iPhone 12 (Core ML), batch 1"
_EF_PHONE = "iPhone 12 (Core ML), batch 1"


def _e(paper, table, item, value, unit, device, setting=None, verified=False, note=None):
    return {"paper": paper, "arxiv": PAPERS[paper]["arxiv"], "table": table, "item": item,
            "setting": setting, "device": device, "value": value, "unit": unit,
            "verified": verified, "note": note}


PUBLISHED: List[Dict[str, Any]] = []

# ---------------------------------------------------------------- FasterNet (arXiv:2303.03667)
# Sec. 3.1 text (the summary of Table 1): PConv's FLOPS relative to DWConv's.
for _dev, _v in (("GPU", 10.5), ("CPU", 6.2), ("ARM", 22.8)):
    PUBLISHED.append(_e("fasternet", "Sec. 3.1 / Table 1", "pconv_over_dwconv_flops", _v, "x",
                        _dev, verified=True,
                        note="PConv achieves this many times DWConv's FLOPS (text of Sec. 3.1)"))
# Abstract: FasterNet-T0 vs MobileViT-XXS speed-up, and accuracy difference.
for _dev, _v in (("GPU", 2.8), ("CPU", 3.3), ("ARM", 2.4)):
    PUBLISHED.append(_e("fasternet", "Abstract", "fasternet_t0_vs_mobilevit_xxs_speedup", _v, "x",
                        _dev, verified=True))
PUBLISHED.append(_e("fasternet", "Abstract", "fasternet_t0_vs_mobilevit_xxs_top1_gain", 2.9,
                    "% points", "ImageNet-1k", verified=True))
PUBLISHED.append(_e("fasternet", "Abstract", "fasternet_l_vs_swin_b_gpu_throughput_gain", 36.0,
                    "%", "GPU", verified=True))
PUBLISHED.append(_e("fasternet", "Abstract", "fasternet_l_vs_swin_b_cpu_time_saving", 37.0,
                    "%", "CPU", verified=True))

# ------------------------------------------------------------ ShuffleNet V2 (arXiv:1807.11164)
# Table 1 (G1): c1:c2 ratio at fixed MACs; GPU in batches/s (x1/x2/x4), ARM in images/s.
_G1 = {"1:1": ((1480, 723, 232), (76.2, 21.7, 5.3)),
       "1:2": ((1296, 586, 206), (72.9, 20.5, 5.1)),
       "1:6": ((876, 489, 189), (69.1, 17.9, 4.6)),
       "1:12": ((748, 392, 163), (57.6, 15.1, 4.4))}
for _item, (_gpu, _arm) in _G1.items():
    for _lvl, _v in zip(("x1", "x2", "x4"), _gpu):
        PUBLISHED.append(_e("shufflenetv2", "Table 1 (G1)", _item, _v, "batches/s", _SV2_GPU, _lvl))
    for _lvl, _v in zip(("x1", "x2", "x4"), _arm):
        PUBLISHED.append(_e("shufflenetv2", "Table 1 (G1)", _item, _v, "images/s", _SV2_ARM, _lvl))
# Table 2 (G2): group number at fixed MACs.
_G2 = {"g=1": ((2451, 1289, 437), (40.0, 10.2, 2.3)),
       "g=2": ((1725, 873, 341), (35.0, 9.5, 2.2)),
       "g=4": ((1026, 644, 338), (32.9, 8.7, 2.1)),
       "g=8": ((634, 445, 230), (27.8, 7.5, 1.8))}
for _item, (_gpu, _arm) in _G2.items():
    for _lvl, _v in zip(("x1", "x2", "x4"), _gpu):
        PUBLISHED.append(_e("shufflenetv2", "Table 2 (G2)", _item, _v, "batches/s", _SV2_GPU, _lvl))
    for _lvl, _v in zip(("x1", "x2", "x4"), _arm):
        PUBLISHED.append(_e("shufflenetv2", "Table 2 (G2)", _item, _v, "images/s", _SV2_ARM, _lvl))
# Table 3 (G3): fragmentation; GPU at c=128/256/512, ARM at c=64/128/256.
_G3 = {"1-fragment": ((2446, 1274, 434), (40.2, 10.1, 2.3)),
       "2-fragment-series": ((1790, 909, 336), (38.6, 10.1, 2.2)),
       "4-fragment-series": ((752, 745, 349), (38.4, 10.1, 2.3)),
       "2-fragment-parallel": ((1537, 803, 320), (33.4, 9.1, 2.2)),
       "4-fragment-parallel": ((691, 572, 292), (35.0, 8.4, 2.1))}
for _item, (_gpu, _arm) in _G3.items():
    for _c, _v in zip((128, 256, 512), _gpu):
        PUBLISHED.append(_e("shufflenetv2", "Table 3 (G3)", _item, _v, "batches/s", _SV2_GPU,
                            f"c={_c}"))
    for _c, _v in zip((64, 128, 256), _arm):
        PUBLISHED.append(_e("shufflenetv2", "Table 3 (G3)", _item, _v, "images/s", _SV2_ARM,
                            f"c={_c}"))
# Table 4 (G4): ReLU / shortcut removed from a ResNet bottleneck; c=32/64/128 on both.
# Rows as (ReLU, short-cut): yes/yes, yes/no, no/yes, no/no.
_G4 = {"relu+shortcut": ((2427, 2066, 1436), (56.7, 16.9, 5.0)),
       "relu only": ((2647, 2256, 1735), (61.9, 18.8, 5.2)),
       "shortcut only": ((2672, 2121, 1458), (57.3, 18.2, 5.1)),
       "neither": ((2842, 2376, 1782), (66.3, 20.2, 5.4))}
for _item, (_gpu, _arm) in _G4.items():
    for _c, _v in zip((32, 64, 128), _gpu):
        PUBLISHED.append(_e("shufflenetv2", "Table 4 (G4)", _item, _v, "batches/s", _SV2_GPU,
                            f"c={_c}"))
    for _c, _v in zip((32, 64, 128), _arm):
        PUBLISHED.append(_e("shufflenetv2", "Table 4 (G4)", _item, _v, "images/s", _SV2_ARM,
                            f"c={_c}"))

# ----------------------------------------------------------------- MobileOne (arXiv:2206.04040)
# Activation functions in a 30-layer CNN, and architectural blocks, latency on iPhone 12.
_MO_ACT = {"relu": 1.53, "gelu": 1.63, "se_relu": 2.10, "silu": 1.72,
           "dynamic_shift_max": 57.04, "dynamic_relu_a": 273.49, "dynamic_relu_b": 242.14}
for _item, _v in _MO_ACT.items():
    PUBLISHED.append(_e("mobileone", "Table 3 (activations, 30-layer CNN)", _item, _v, "ms",
                        _MO_PHONE))
_MO_BLOCKS = {"baseline": 1.53, "+se": 2.10, "+skip": 2.62}
for _item, _v in _MO_BLOCKS.items():
    PUBLISHED.append(_e("mobileone", "Table 4 (architectural blocks, 30-layer CNN)", _item, _v,
                        "ms", _MO_PHONE,
                        note="'+skip' adds skip connections to the SE network"))

# ---------------------------------------------------------- EfficientFormer (arXiv:2206.01191)
PUBLISHED.append(_e("efficientformer", "Abstract", "efficientformer_l1", 1.6, "ms", _EF_PHONE,
                    verified=True, note="79.2% top-1"))
PUBLISHED.append(_e("efficientformer", "Abstract", "mobilenetv2_140", 1.6, "ms", _EF_PHONE,
                    verified=True, note="MobileNetV2 x1.4, 74.7% top-1: 'runs as fast as'"))


def lookup(paper: str, table_prefix: Optional[str] = None, **match) -> List[Dict[str, Any]]:
    """Entries of ``paper`` whose ``table`` starts with ``table_prefix`` and whose fields equal
    ``match`` (e.g. ``unit='images/s'``, ``setting='x1'``)."""
    out = []
    for e in PUBLISHED:
        if e["paper"] != paper:
            continue
        if table_prefix is not None and not e["table"].startswith(table_prefix):
            continue
        if all(e.get(k) == v for k, v in match.items()):
            out.append(e)
    return out


def value(paper: str, table_prefix: Optional[str], item: str, **match) -> Optional[float]:
    """The single published value for ``item``, or None when the paper has none."""
    hits = lookup(paper, table_prefix, item=item, **match)
    if len(hits) > 1:
        raise ValueError(f"{paper}/{table_prefix}/{item}/{match}: {len(hits)} entries, expected one")
    return hits[0]["value"] if hits else None
