"""FLOPs vs latency for the whole zoo, and the papers' headline speed claims re-checked here.

For every registered model (or those matching ``--models``): parameters, MACs and memory access
(:mod:`ppnets.analysis`, deploy form), latency and achieved FLOPS (:mod:`ppnets.bench`), the
published top-1 (``model_info``). Scatter plots: MACs vs latency and top-1 vs latency.

Headline claims (sourced in :mod:`ppnets.studies.published`):

* FasterNet-T0 is 2.8x / 3.3x / 2.4x faster than MobileViT-XXS on GPU / CPU / ARM (FasterNet
  abstract);
* FasterNet-L vs Swin-B (36% more GPU throughput, 37% less CPU time): Swin-B is not in the
  registry, so this claim cannot be checked here; the study says so;
* EfficientFormer-L1 (1.6 ms) "runs as fast as" MobileNetV2 x1.4 (1.6 ms) on an iPhone 12
  (EfficientFormer abstract); MobileNetV2 x1.0 is listed too.

Per runtime (``--runtimes``): every model's latency, each claim's verdict per device, and one
column of panels in the figure (MACs vs latency above, top-1 vs latency below, the latency axes
shared across runtimes).

    ppnets study zoo [--quick] [--models 'fasternet_*' mobilevit_xxs] [--warmup 5 --repeats 20]
    ppnets study zoo --runtimes paddle_inference onnxruntime openvino
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

import ppnets
from ppnets.analysis import profile_model
from ppnets.registry import resolve_model_names
from ppnets.utils import markdown_table

from . import published
from .study import Study, StudyError, StudyOptions, StudyRunner, ratio, speed, verdict

QUICK_MODELS = ("mobilenetv3_small_050",)
GPU_BATCH = 32

CLAIMS = [
    # kind: "faster" (fast is claimed faster), "as_fast" (about equal), "info" (no claim)
    {"claim": "FasterNet-T0 faster than MobileViT-XXS", "fast": "fasternet_t0",
     "slow": "mobilevit_xxs", "paper": "fasternet", "kind": "faster",
     "paper_item": "fasternet_t0_vs_mobilevit_xxs_speedup",
     "top1_item": "fasternet_t0_vs_mobilevit_xxs_top1_gain"},
    {"claim": "FasterNet-L faster than Swin-B", "fast": "fasternet_l",
     "slow": "swin_base_patch4_window7_224", "paper": "fasternet", "kind": "faster",
     "paper_item": None},
    {"claim": "EfficientFormer-L1 as fast as MobileNetV2 x1.4", "fast": "efficientformer_l1",
     "slow": "mobilenetv2_140", "paper": "efficientformer", "kind": "as_fast",
     "paper_item": None},
    {"claim": "EfficientFormer-L1 vs MobileNetV2 x1.0 (no claim in the paper)",
     "fast": "efficientformer_l1", "slow": "mobilenetv2_100", "paper": "efficientformer",
     "kind": "info", "paper_item": None},
]


def _complexity(name: str) -> Dict[str, Any]:
    """params / MACs / memory of the deploy form (ppnets.analysis)."""

    try:
        prof = profile_model(name, deploy=True)
    except Exception:  # noqa: BLE001 - a family without a direct deploy build: fuse a copy
        model = ppnets.create_model(name)
        model.eval()
        ppnets.reparameterize_model(model)
        prof = profile_model(model, input_size=tuple(ppnets.model_info(name)["input_size"]))
    return {"params": prof.params, "macs": prof.macs, "memory_bytes": prof.memory_bytes}


def _paper_claim_values(claim: Dict[str, Any]) -> Dict[str, Optional[float]]:
    if claim["paper_item"] is None:
        return {}
    return {e["device"]: e["value"] for e in published.lookup(claim["paper"],
                                                              item=claim["paper_item"])}


def figure_left_out(rows: List[Dict[str, Any]], device: str,
                    failures: List[Dict[str, Any]]) -> List[tuple]:
    """(model, why) for every model of the run missing from a panel of the figure."""
    errors = {f["label"]: f["error"] for f in failures}
    out = []
    for r in rows:
        if r.get(f"{device}_ms") is None:
            out.append((r["model"], f"no {device} latency ({errors.get(r['model'], 'not measured')})"
                        "; in neither panel"))
            continue
        if r.get("macs_g") is None:
            out.append((r["model"], "MACs not counted; left out of the MACs panel"))
        if r.get("top1") is None:
            out.append((r["model"], "no published top-1 in model_info; left out of the top-1 "
                                    "panel"))
    return out


@dataclass
class ZooOptions(StudyOptions):
    # registry names or fnmatch patterns; None: every registered model (QUICK_MODELS if quick)
    models: Optional[Sequence[str]] = None


def measure(runner: StudyRunner, options: ZooOptions) -> List[Dict[str, Any]]:
    """One row per model: complexity (deploy form) and published figures; every model is
    measured on every device and runtime (the speeds are the judgement's, per runtime)."""
    patterns = options.models or (list(QUICK_MODELS) if options.quick else ["*"])
    try:
        names = resolve_model_names(patterns)
    except KeyError as exc:
        raise StudyError(exc.args[0]) from exc
    rows: List[Dict[str, Any]] = []
    for name in names:
        info = ppnets.model_info(name)
        try:
            cx = _complexity(name)
        except Exception as exc:  # noqa: BLE001
            runner.failures.append({"label": name, "device": "-", "runtime": "-", "error":
                                    f"complexity: {type(exc).__name__}: {exc}"[:300]})
            cx = {"params": None, "macs": None, "memory_bytes": None}
        row = {"model": name, "family": info.get("family"), "input_size": list(info["input_size"]),
               "top1": info.get("top1"), "published_macs_g": info.get("macs_g"),
               "params_m": None if cx["params"] is None else cx["params"] / 1e6,
               "macs_g": None if cx["macs"] is None else cx["macs"] / 1e9,
               "memory_mb": None if cx["memory_bytes"] is None else cx["memory_bytes"] / 1e6}
        for device in runner.devices:
            runner.measure_model(name, device=device,
                                 batch_size=GPU_BATCH if device == "gpu" else 1)
        rows.append(row)
    return rows


def _with_speeds(runner: StudyRunner, rows: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Copies of ``rows`` with the active runtime's speeds per device (None: not measured)."""
    out = []
    for row in rows:
        row = copy.deepcopy(row)
        for d in ("cpu", "gpu", "arm"):
            rec = runner.find(row["model"], d)
            row[f"{d}_ms"] = speed(rec, "ms")
            row[f"{d}_ips"] = speed(rec, "images/s")
            row[f"{d}_gflops"] = speed(rec, "GFLOPS")
        out.append(row)
    return out


def judge(runner: StudyRunner, options: ZooOptions, rows: List[Dict[str, Any]]) -> Dict[str, Any]:
    """The active runtime's speeds, and each headline claim (:data:`CLAIMS`) checked on every
    device with figures."""
    rows = _with_speeds(runner, rows)
    devices = runner.devices_with_figures()
    by_name = {r["model"]: r for r in rows}
    registered = set(ppnets.list_models())
    claims = []
    for c in CLAIMS:
        entry = {"claim": c["claim"], "fast": c["fast"], "slow": c["slow"],
                 "paper": _paper_claim_values(c), "ours": {}}
        missing = [m for m in (c["fast"], c["slow"]) if m not in registered]
        if missing:
            entry["text"] = (f"{c['claim']}: cannot be checked here: {', '.join(missing)} "
                             "is not registered in ppnets")
        elif c["fast"] not in by_name or c["slow"] not in by_name:
            entry["text"] = (f"{c['claim']}: not measured in this run (add "
                             f"`--models {c['fast']} {c['slow']}`)")
        else:
            parts = [_check_claim(c, entry, by_name, d) for d in devices]
            parts = [p for p in parts if p is not None]
            if c.get("top1_item"):
                gain = ppnets.model_info(c["fast"])["top1"] - ppnets.model_info(c["slow"])["top1"]
                paper_gain = published.value(c["paper"], None, c["top1_item"])
                entry["top1_gain"] = {"ours_model_info": gain, "paper": paper_gain}
                parts.append(f"top-1 difference from model_info {gain:+.1f} points "
                             f"(paper {paper_gain:+.1f})")
            entry["text"] = f"{c['claim']}: " + ("; ".join(parts) if parts else "no latency")
        claims.append(entry)
    verdicts = []
    for c, entry in zip(CLAIMS, claims):
        if c["kind"] == "info":
            continue
        # a claim that cannot be checked in this run stays in the table, undecided
        decided = entry.get("holds") or {"-": None}
        verdicts += [verdict(c["claim"], d, holds, entry["text"]) for d, holds in decided.items()]
    return {"models": rows, "claims": claims, "verdicts": verdicts,
            "published": published.lookup("fasternet", "Abstract")
            + published.lookup("efficientformer", "Abstract")}


def _check_claim(c: Dict[str, Any], entry: Dict[str, Any], by_name: Dict[str, Dict[str, Any]],
                 d: str) -> Optional[str]:
    """Our speed-up on device ``d`` into ``entry`` (ours, verdict); its sentence, or None."""
    sp = ratio(by_name[c["slow"]][f"{d}_ms"], by_name[c["fast"]][f"{d}_ms"])
    entry["ours"][d] = sp
    pv = entry["paper"].get(d.upper())
    if sp is None:
        return None
    verdict = "" if pv is None else f" (paper {pv}x; ours/paper {sp / pv:.2f})"
    if c["kind"] != "info":
        entry.setdefault("holds", {})[d] = sp > 1.0 if c["kind"] == "faster" else sp >= 0.8
    if c["kind"] == "faster":
        holds = ", claim holds here" if sp > 1.0 else ", claim DOES NOT HOLD here"
    elif c["kind"] == "as_fast":
        # "runs as fast as": holds unless the first model is >20% slower
        holds = (", claim holds here (not slower by more than 20%)" if sp >= 0.8
                 else ", claim DOES NOT HOLD here (slower by more than 20%)")
    else:
        holds = ""
    entry.setdefault("verdict", {})[d] = holds.split("claim ")[-1] or None
    return f"{d}: {c['slow']} / {c['fast']} latency = {sp:.2f}x{holds}{verdict}"


def describe(runner: StudyRunner, options: ZooOptions, rows: List[Dict[str, Any]]) -> str:
    return "\n".join([
        runner.header_markdown("FLOPs vs latency: the whole zoo",
                               "FasterNet (arXiv:2303.03667), EfficientFormer "
                               "(arXiv:2206.01191) headline claims; every registered model"),
        "Deploy form; params/MACs/memory from `ppnets.analysis` (memory: ShuffleNetV2's "
        "memory access cost, fp32); GFLOPS = 2 x MACs / latency. top-1: published "
        f"(`model_info`). CPU/ARM batch 1, GPU batch {GPU_BATCH}."])


def render(runner: StudyRunner, options: ZooOptions, measured: List[Dict[str, Any]],
           judged: Dict[str, Any]) -> str:
    rows = judged["models"]
    devices = runner.devices_with_figures()
    md = []
    head = ["model", "input", "params (M)", "MACs (G)", "memory (MB)", "top-1"]
    for d in devices:
        head += [f"{d} ms", f"{d} img/s", f"{d} GFLOPS"]
    body = []
    first = devices[0] if devices else "cpu"
    for r in sorted(rows, key=lambda r: (r.get(f"{first}_ms") or math.inf)):
        line = [r["model"], "x".join(map(str, r["input_size"][1:])), r["params_m"], r["macs_g"],
                r["memory_mb"], r["top1"]]
        for d in devices:
            line += [r[f"{d}_ms"], r[f"{d}_ips"], r[f"{d}_gflops"]]
        body.append(line)
    md += [f"## Models (fastest first on {first})", "",
           markdown_table(head, body, align="---|---" + "|---:" * (len(head) - 2)), ""]
    md += ["## Headline claims", ""] + [f"- {c['text']}" for c in judged["claims"]] + [""]
    failures = [f for f in runner.failures if f["runtime"] in (runner.runtime, "-")]
    left_out = figure_left_out(rows, first, failures)
    md += ["## Left out of the figure", ""] + (
        [f"- {name}: {why}" for name, why in left_out] or
        ["- none: every model of this run is in both of this runtime's panels"]) + [""]
    return "\n".join(md)


def figure(runner: StudyRunner, options: ZooOptions, measured: List[Dict[str, Any]],
           judged: Dict[str, Dict[str, Any]]):
    """One column per runtime: MACs vs latency above, published top-1 vs latency below, each
    on the runtime's first device; the latency axis is shared along each row."""
    panels = []
    for runtime, judgement in judged.items():
        with runner.judging(runtime):
            devices = runner.devices_with_figures()
        if devices:
            panels.append((runtime, devices[0], judgement["models"]))
    if not measured or not panels:
        return None

    def draw(plt):
        fig, axes = plt.subplots(2, len(panels), figsize=(5.5 * len(panels), 8.4),
                                 squeeze=False, sharey="row")
        families = sorted({r["family"] for _, _, rows in panels for r in rows})
        for col, (runtime, d, rows) in enumerate(panels):
            pts = [r for r in rows if r.get(f"{d}_ms")]
            for ax, key, xlabel, what in ((axes[0][col], "macs_g", "MACs (G)", "MACs"),
                                          (axes[1][col], "top1", "top-1 (%)",
                                           "published top-1")):
                sel = [r for r in pts if r.get(key) is not None]
                for i, fam in enumerate(families):
                    fr = [r for r in sel if r["family"] == fam]
                    if fr:
                        ax.scatter([r[key] for r in fr], [r[f"{d}_ms"] for r in fr], s=14,
                                   label=fam, color=f"C{i % 10}", marker="os^Dv"[i // 10 % 5])
                for r in sel:
                    ax.annotate(r["model"], (r[key], r[f"{d}_ms"]), fontsize=4)
                ax.set_xlabel(xlabel, fontsize=8)
                if col == 0:
                    ax.set_ylabel("latency (ms)", fontsize=8)
                ax.set_title(f"{runtime}: {what} vs latency ({d})", fontsize=9)
                if key == "macs_g" and sel:
                    ax.set_xscale("log")
                    ax.set_yscale("log")
        axes[1][-1].legend(fontsize=5, ncol=2)
        fig.tight_layout()

    return draw


STUDY = Study(name="zoo", stem="latency_zoo",
              summary="every registered model: params, MACs, memory, latency, FLOPS; the "
                      "headline speed claims",
              measure=measure, judge=judge, describe=describe, render=render, figure=figure,
              options=ZooOptions)
