"""The papers' latency figures, as sourced data: one entry per published number.

Each entry: ``paper`` (key into :data:`PAPERS`), ``table`` (where in the paper), ``item`` (the
row, in the study's own label), ``setting`` (the column: complexity level, width, ...),
``device`` (the paper's device and run setting), ``value``, ``unit``, ``verified`` and
``source``.

``verified`` says whether the number was checked against a copy of the paper's text, and
``source`` names that copy. The abstract and in-text figures were checked against the arXiv
abstracts / text. The ShuffleNet V2 Tables 1-4 and FasterNet Table 1 cells were checked cell by
cell against text copies of the arXiv papers (HTML-to-Markdown conversions and a bilingual
translation stored in the public GitHub search index; the index shows a file id, not its
repository, so ``source`` gives the id). The MobileOne cells are still ``verified=False``: no
text copy of those tables could be found (searched twice; the reviews and notes that discuss
them reproduce the tables as images), and their table numbers are unconfirmed too
(:data:`MOBILEONE_TABLES`). Every study prints the flag
beside the number, and the studies compare *orderings and ratios*, which survive a small
transcription error, rather than absolute values, which depend on the device anyway.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

__all__ = ["PAPERS", "PUBLISHED", "MOBILEONE_TABLES", "lookup", "value"]

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


def _e(paper, table, item, value, unit, device, setting=None, verified=False, note=None,
       source=None):
    return {"paper": paper, "arxiv": PAPERS[paper]["arxiv"], "table": table, "item": item,
            "setting": setting, "device": device, "value": value, "unit": unit,
            "verified": verified, "note": note, "source": source}


PUBLISHED: List[Dict[str, Any]] = []

# ---------------------------------------------------------------- FasterNet (arXiv:2303.03667)
# Sec. 4.1 text ("PConv is fast with high FLOPS", the summary of Table 1): PConv's FLOPS
# relative to DWConv's. (The paper's Sec. 3.1 is "Preliminary", on DWConv's memory access.)
for _dev, _v in (("GPU", 10.5), ("CPU", 6.2), ("ARM", 22.8)):
    PUBLISHED.append(_e("fasternet", "Sec. 4.1 / Table 1", "pconv_over_dwconv_flops", _v, "x",
                        _dev, verified=True,
                        note="PConv achieves this many times DWConv's FLOPS (the text under "
                             "Table 1; = the ratio of the Table 1 'Average' FLOPS rows)",
                        source="arXiv:2303.03667 Sec. 4.1 text (file id 70475555301, see "
                               "Table 1 below)"))
# Abstract: FasterNet-T0 vs MobileViT-XXS speed-up, and accuracy difference.
_FN_ABS = "https://arxiv.org/abs/2303.03667 (abstract)"
for _dev, _v in (("GPU", 2.8), ("CPU", 3.3), ("ARM", 2.4)):
    PUBLISHED.append(_e("fasternet", "Abstract", "fasternet_t0_vs_mobilevit_xxs_speedup", _v, "x",
                        _dev, verified=True, source=_FN_ABS))
PUBLISHED.append(_e("fasternet", "Abstract", "fasternet_t0_vs_mobilevit_xxs_top1_gain", 2.9,
                    "% points", "ImageNet-1k", verified=True, source=_FN_ABS))
PUBLISHED.append(_e("fasternet", "Abstract", "fasternet_l_vs_swin_b_gpu_throughput_gain", 36.0,
                    "%", "GPU", verified=True, source=_FN_ABS))
PUBLISHED.append(_e("fasternet", "Abstract", "fasternet_l_vs_swin_b_cpu_time_saving", 37.0,
                    "%", "CPU", verified=True, source=_FN_ABS))

# Table 1: 10 stacked layers of one 3x3 operator per feature-map size (channels x h x w). The
# paper counts a multiply-add as one FLOP (its footnote 1), so its "FLOPs" are MACs and its
# "FLOPS (G/s)" are GMAC/s. Devices as in its Sec. 4: GPU 2080Ti at batch 32 (throughput), CPU
# Intel i9-9900X and ARM Cortex-A72, single thread, batch 1 (latency).
_FN_SRC = ("arXiv:2303.03667 Table 1, read in a Markdown conversion of the paper's arXiv HTML "
           "(public GitHub search index, file id 70475555301; same text as "
           "https://ar5iv.labs.arxiv.org/html/2303.03667)")
_FN_COUNT = "operator count, no device (10 layers)"
_FN_GPU = "NVIDIA RTX 2080Ti, batch 32"
_FN_CPU = "Intel i9-9900X, single thread, batch 1"
_FN_ARM = "ARM Cortex-A72, single thread, batch 1"
# Per feature map: (MFLOPs x10 layers, GPU fps, GPU G/s, CPU ms, CPU G/s, ARM ms, ARM G/s).
_FN_T1 = {
    "conv": {"96x56x56": (2601, 3010, 7824, 35.67, 72.90, 779.57, 3.33),
             "192x28x28": (2601, 4893, 12717, 28.41, 91.53, 619.64, 4.19),
             "384x14x14": (2601, 4558, 11854, 31.85, 81.66, 595.09, 4.37),
             "768x7x7": (2601, 3159, 8212, 62.71, 41.47, 662.17, 3.92)},
    "gconv": {"96x56x56": (162, 2888, 469, 21.90, 7.42, 166.30, 0.97),
              "192x28x28": (162, 10811, 1754, 7.58, 21.44, 96.22, 1.68),
              "384x14x14": (162, 15534, 2514, 4.40, 36.88, 63.57, 2.55),
              "768x7x7": (162, 16000, 2598, 4.28, 37.97, 65.20, 2.49)},
    "dwconv": {"96x56x56": (27.09, 11940, 323, 3.59, 7.52, 108.70, 0.24),
               "192x28x28": (13.54, 23358, 315, 1.97, 6.86, 82.01, 0.16),
               "384x14x14": (6.77, 46377, 313, 1.06, 6.35, 94.89, 0.07),
               "768x7x7": (3.38, 88889, 302, 0.68, 4.93, 150.89, 0.02)},
    "pconv": {"96x56x56": (162, 9215, 1493, 5.46, 29.67, 85.30, 1.90),
              "192x28x28": (162, 14360, 2326, 3.09, 52.43, 66.46, 2.44),
              "384x14x14": (162, 24408, 3954, 3.58, 45.25, 49.98, 3.24),
              "768x7x7": (162, 32866, 5324, 5.02, 32.27, 48.30, 3.35)},
}
# The table's "Average" rows (FLOPS on GPU / CPU / ARM); the Sec. 4.1 ratios above are
# PConv's averages over DWConv's (3274/313, 39.91/6.42, 2.73/0.12).
_FN_T1_AVG = {"conv": (10151, 71.89, 3.95), "gconv": (1833, 25.93, 1.92),
              "dwconv": (313, 6.42, 0.12), "pconv": (3274, 39.91, 2.73)}
for _op, _rows in _FN_T1.items():
    for _fm, (_mf, _fps, _gflops, _cms, _cflops, _ams, _aflops) in _rows.items():
        for _v, _unit, _dev in ((_mf, "MFLOPs (MACs, x10 layers)", _FN_COUNT),
                                (_fps, "fps", _FN_GPU), (_gflops, "GFLOPS (GMAC/s)", _FN_GPU),
                                (_cms, "ms", _FN_CPU), (_cflops, "GFLOPS (GMAC/s)", _FN_CPU),
                                (_ams, "ms", _FN_ARM), (_aflops, "GFLOPS (GMAC/s)", _FN_ARM)):
            PUBLISHED.append(_e("fasternet", "Table 1", _op, _v, _unit, _dev, _fm, verified=True,
                                source=_FN_SRC))
for _op, _avgs in _FN_T1_AVG.items():
    for _v, _dev in zip(_avgs, (_FN_GPU, _FN_CPU, _FN_ARM)):
        PUBLISHED.append(_e("fasternet", "Table 1", _op, _v, "GFLOPS (GMAC/s)", _dev, "average",
                            verified=True, source=_FN_SRC))

# ------------------------------------------------------------ ShuffleNet V2 (arXiv:1807.11164)
# All cells of Tables 1-4 checked against two independent text copies of arXiv:1807.11164 (they
# agree cell for cell). The paper's Tables 2-4 head their slow-device column "CPU (Images/sec.)";
# the text (Sec. 2) says that device is the Snapdragon 810 ARM, as Table 1's "ARM" column. Every
# benchmark network stacks its block 10 times, input 56x56; the tables give no batch size (the
# GPU batch of 8 is the one Fig. 1 states).
_SV2_SRC = ("arXiv:1807.11164 Tables 1-4, read in two text copies of the paper in the public "
            "GitHub search index: a Markdown conversion of its arXiv HTML (file id 70327696908) "
            "and an English/Chinese translation with the tables as text (file id 37920262143)")
# Table 1 (G1): c1:c2 ratio at fixed FLOPs (= MACs); GPU in batches/s (x1/x2/x4), ARM in images/s.
_G1 = {"1:1": ((1480, 723, 232), (76.2, 21.7, 5.3)),
       "1:2": ((1296, 586, 206), (72.9, 20.5, 5.1)),
       "1:6": ((876, 489, 189), (69.1, 17.9, 4.6)),
       "1:12": ((748, 392, 163), (57.6, 15.1, 4.4))}
for _item, (_gpu, _arm) in _G1.items():
    for _lvl, _v in zip(("x1", "x2", "x4"), _gpu):
        PUBLISHED.append(_e("shufflenetv2", "Table 1 (G1)", _item, _v, "batches/s", _SV2_GPU, _lvl,
                            verified=True, source=_SV2_SRC))
    for _lvl, _v in zip(("x1", "x2", "x4"), _arm):
        PUBLISHED.append(_e("shufflenetv2", "Table 1 (G1)", _item, _v, "images/s", _SV2_ARM, _lvl,
                            verified=True, source=_SV2_SRC))
# Table 2 (G2): group number at fixed MACs.
_G2 = {"g=1": ((2451, 1289, 437), (40.0, 10.2, 2.3)),
       "g=2": ((1725, 873, 341), (35.0, 9.5, 2.2)),
       "g=4": ((1026, 644, 338), (32.9, 8.7, 2.1)),
       "g=8": ((634, 445, 230), (27.8, 7.5, 1.8))}
for _item, (_gpu, _arm) in _G2.items():
    for _lvl, _v in zip(("x1", "x2", "x4"), _gpu):
        PUBLISHED.append(_e("shufflenetv2", "Table 2 (G2)", _item, _v, "batches/s", _SV2_GPU, _lvl,
                            verified=True, source=_SV2_SRC))
    for _lvl, _v in zip(("x1", "x2", "x4"), _arm):
        PUBLISHED.append(_e("shufflenetv2", "Table 2 (G2)", _item, _v, "images/s", _SV2_ARM, _lvl,
                            verified=True, source=_SV2_SRC))
# Table 3 (G3): fragmentation; GPU at c=128/256/512, ARM at c=64/128/256.
_G3 = {"1-fragment": ((2446, 1274, 434), (40.2, 10.1, 2.3)),
       "2-fragment-series": ((1790, 909, 336), (38.6, 10.1, 2.2)),
       "4-fragment-series": ((752, 745, 349), (38.4, 10.1, 2.3)),
       "2-fragment-parallel": ((1537, 803, 320), (33.4, 9.1, 2.2)),
       "4-fragment-parallel": ((691, 572, 292), (35.0, 8.4, 2.1))}
for _item, (_gpu, _arm) in _G3.items():
    for _c, _v in zip((128, 256, 512), _gpu):
        PUBLISHED.append(_e("shufflenetv2", "Table 3 (G3)", _item, _v, "batches/s", _SV2_GPU,
                            f"c={_c}", verified=True, source=_SV2_SRC))
    for _c, _v in zip((64, 128, 256), _arm):
        PUBLISHED.append(_e("shufflenetv2", "Table 3 (G3)", _item, _v, "images/s", _SV2_ARM,
                            f"c={_c}", verified=True, source=_SV2_SRC))
# Table 4 (G4): ReLU / shortcut removed from a ResNet bottleneck; c=32/64/128 on both.
# Rows as (ReLU, short-cut): yes/yes, yes/no, no/yes, no/no.
_G4 = {"relu+shortcut": ((2427, 2066, 1436), (56.7, 16.9, 5.0)),
       "relu only": ((2647, 2256, 1735), (61.9, 18.8, 5.2)),
       "shortcut only": ((2672, 2121, 1458), (57.3, 18.2, 5.1)),
       "neither": ((2842, 2376, 1782), (66.3, 20.2, 5.4))}
for _item, (_gpu, _arm) in _G4.items():
    for _c, _v in zip((32, 64, 128), _gpu):
        PUBLISHED.append(_e("shufflenetv2", "Table 4 (G4)", _item, _v, "batches/s", _SV2_GPU,
                            f"c={_c}", verified=True, source=_SV2_SRC))
    for _c, _v in zip((32, 64, 128), _arm):
        PUBLISHED.append(_e("shufflenetv2", "Table 4 (G4)", _item, _v, "images/s", _SV2_ARM,
                            f"c={_c}", verified=True, source=_SV2_SRC))

# ----------------------------------------------------------------- MobileOne (arXiv:2206.04040)
# Activation functions in a 30-layer CNN, and architectural blocks, latency on iPhone 12.
# UNVERIFIED, values and table numbers alike. Searched again (issue 6) in the public GitHub
# search index (exact strings: "Dynamic Shift-Max", "DynamicReLU", "SE-ReLU", "273.49",
# "30-layer convolutional neural network") and in the stored web pages and documentation (the
# paper's table captions, the reviews, arXiv/ar5iv/CVF pages): every copy found that discusses
# these two tables (Sik-Ho Tsang's review, Korean and English paper notes, a Chinese news
# article) reproduces them as images, and no text copy of the paper's body was found. The
# reviews walk the paper in the order latency/FLOPs/params Spearman correlation -> activation
# table -> block table, which suggests Tables 2 and 3 rather than 3 and 4, but no copy gives the
# numbers. The study looks the entries up through MOBILEONE_TABLES, so a confirmed number only
# needs changing here.
MOBILEONE_TABLES = {
    "activations": "Activation table (30-layer CNN; paper's table number unverified: 2 or 3)",
    "blocks": "Architectural-block table (30-layer CNN; paper's table number unverified: 3 or 4)",
}
_MO_TABLE_NOTE = ("value and table number unverified: no text copy of the table was found "
                  "(every copy found shows it as an image)")
_MO_ACT = {"relu": 1.53, "gelu": 1.63, "se_relu": 2.10, "silu": 1.72,
           "dynamic_shift_max": 57.04, "dynamic_relu_a": 273.49, "dynamic_relu_b": 242.14}
for _item, _v in _MO_ACT.items():
    PUBLISHED.append(_e("mobileone", MOBILEONE_TABLES["activations"], _item, _v, "ms",
                        _MO_PHONE, note=_MO_TABLE_NOTE))
_MO_BLOCKS = {"baseline": 1.53, "+se": 2.10, "+skip": 2.62}
for _item, _v in _MO_BLOCKS.items():
    PUBLISHED.append(_e("mobileone", MOBILEONE_TABLES["blocks"], _item, _v, "ms", _MO_PHONE,
                        note="'+skip' adds skip connections to the SE network; " + _MO_TABLE_NOTE))

# ---------------------------------------------------------- EfficientFormer (arXiv:2206.01191)
_EF_ABS = "https://arxiv.org/abs/2206.01191 (abstract)"
PUBLISHED.append(_e("efficientformer", "Abstract", "efficientformer_l1", 1.6, "ms", _EF_PHONE,
                    verified=True, note="79.2% top-1", source=_EF_ABS))
PUBLISHED.append(_e("efficientformer", "Abstract", "mobilenetv2_140", 1.6, "ms", _EF_PHONE,
                    verified=True, note="MobileNetV2 x1.4, 74.7% top-1: 'runs as fast as'",
                    source=_EF_ABS))
PUBLISHED.append(_e("efficientformer", "Abstract", "efficientformer_l7", 7.0, "ms", _EF_PHONE,
                    verified=True, note="83.3% top-1", source=_EF_ABS))


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
