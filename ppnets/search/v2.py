"""EfficientFormerV2's fine-grained joint search with MES, end to end (arXiv:2212.08059 §4).

1. Train the slimmable supernet (:mod:`.supernet_v2`) with the sandwich rule: elastic depth,
   switchable widths with one BatchNorm per width, per-FFN expansion ratios.
2. From the largest subnet, greedy search (:func:`.slimming.greedy_slimming`) over the action
   pool {remove a block or an MHSA, shrink a stage width, shrink one FFN's expansion ratio}
   (:meth:`.space_v2.V2Space.actions`): every action's latency from the table, its parameters,
   its MES (:mod:`.mes`) and its accuracy on the held-out split (weights and per-width BN from
   the supernet, BN re-estimated); the action with the smallest accuracy drop per MES gained is
   taken, until the smallest latency target; each target's network is the first state under it.
3. For each target: the network as ``create_model("efficientformerv2_s0", **kwargs)`` kwargs,
   predicted and measured latency, parameters, MES, and EfficientFormerV2-S0 scaled down by
   width and depth alone to the same predicted budget; both trained briefly.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List

from ppnets.engine import evaluate_network

from .data import SearchData
from .lut import ParamCounter
from .mes import mes
from .runner import SearchOptions, SearchRun, format_table, pick_baseline
from .sharing import recalibrate_bn
from .slimming import greedy_slimming
from .space_v2 import FAMILY, V2Arch, V2Net, V2Space
from .supernet_v2 import SlimmableSupernet, train_supernet_v2

__all__ = ["search", "export_grid", "RECIPE", "OUTPUT_DIR"]

SCHEMA = "ppnets.search.efficientformerv2/1"
RECIPE = "search/efficientformerv2_cifar10"   # the shipped recipe (ppnets configs show NAME)
OUTPUT_DIR = "outputs/search/efficientformerv2"


def _setup(options: SearchOptions):
    """(run, data, search space, scaled-S0 baseline family)."""
    sr = SearchRun(options, RECIPE)
    sup = sr.supernet
    data = sr.load_data()
    space = V2Space(sr.image_size, sup["depths"], sup["widths"], sup["ratios"], data.num_classes,
                    width_step=int(sup.get("width_step", 16)), min_widths=sup.get("min_widths"),
                    min_depth=int(sup.get("min_depth", 1)))
    return sr, data, space, space.scaled_s0_family(sr.recipe["baseline_factors"])


def export_grid(options: SearchOptions) -> Dict[str, Any]:
    """Every block of the search grid (and of the baselines) as a Paddle Lite ``.nb`` with the
    device-side timer, into ``options.export_lite_grid``; returns the grid's manifest."""
    sr, _, space, family = _setup(options)
    return sr.export_grid(space.grid_specs(extra=family))


def _search(sr: SearchRun, space: V2Space, supernet: SlimmableSupernet, data: SearchData,
            predicted: Callable[[V2Net], float], mes_of: Callable[[V2Net, float], float]
            ) -> Dict[str, Any]:
    """Step 2: the MES-driven greedy search from the largest subnet to the latency targets
    (held-out accuracy of each candidate, weights and per-width BN from the supernet)."""
    recipe = sr.recipe
    calib = data.calibration_batches(int(recipe["bn_calibration"]["batches"]),
                                     int(recipe["bn_calibration"]["batch_size"]), sr.seed)
    heldout = data.heldout_loader(int(sr.cfg["data"]["eval_batch_size"] or 64))

    def accuracy(arch: V2Arch) -> float:
        model = supernet.model(arch)
        recalibrate_bn(model, calib)
        return evaluate_network(model, heldout).top1

    start = space.largest()
    targets = sr.targets(predicted(start.net))
    pool = str(recipe.get("action_pool", "full"))
    print(f"=== MES search to {targets} ms ({sr.lut.target} table, pool {pool})", flush=True)
    log = greedy_slimming(
        start, targets, propose=lambda a: space.actions(a, pool),
        latency_ms=lambda a: predicted(a.net), accuracy=accuracy,
        efficiency=lambda a, lat: mes_of(a.net, lat), describe=lambda a: a.describe(),
        progress=lambda s: print(f"  step {s['step']}: {s['action']}: {s['latency_ms']:.3f} ms, "
                                 f"held-out {s['accuracy']:.4f}, MES +{s['gain']:.3f}",
                                 flush=True))
    return dict(log, action_pool=pool)


def _networks(sr: SearchRun, space: V2Space, log: Dict[str, Any], family: List[V2Net],
              data: SearchData, predicted: Callable[[V2Net], float],
              mes_of: Callable[[V2Net, float], float]) -> List[Dict[str, Any]]:
    """Step 3: each target's network and the scaled-S0 baseline at its budget, trained."""
    img = sr.image_size
    results = []
    for res in log["results"]:
        st = res["state"]
        net = V2Net(tuple(st["depths"]), tuple(st["widths"]),
                    tuple(tuple(r) for r in st["ratios"]), tuple(st["vits"]))
        tag = f"{res['target_ms']:g}ms"
        row = sr.network_row(f"searched_{tag}", FAMILY, net.kwargs(img, space.distillation),
                             res["latency_ms"], (3, img, img), data.num_classes,
                             heldout_accuracy=res["accuracy"], mes=mes_of(net, res["latency_ms"]))
        base = pick_baseline(family, predicted, res["target_ms"])
        baseline = None
        if base is not None:
            bnet, blat = base
            baseline = sr.network_row(f"scaled_s0_{tag}", FAMILY,
                                      bnet.kwargs(img, space.distillation), blat, (3, img, img),
                                      data.num_classes, mes=mes_of(bnet, blat))
        results.append({"target_ms": res["target_ms"], "reached": res["reached"],
                        "step": res["step"], **row, "baseline": baseline})
    return results


def _report(log: Dict[str, Any], results: List[Dict[str, Any]], units: Dict[str, Any]
            ) -> List[str]:
    """search.md's sections: the results table and the action log."""
    return ["## Results", "", f"MES constants: {units} (docs/search.md says which are verified).",
            ""] + format_table(results, extra=[("MES", "mes")]) + [
        "", "## Action log", "",
        "| step | action | predicted (ms) | held-out acc | MES gain | drop/MES |",
        "|---:|---|---:|---:|---:|---:|"] + [
        f"| {s['step']} | {s['action']} | {s['latency_ms']:.3f} | {s['accuracy']:.4f} | "
        f"{s['gain']:.3f} | {s['ratio']:.5f} |" for s in log["steps"]]


def search(options: SearchOptions) -> Dict[str, Any]:
    """The whole search; writes the result files into ``options.out_root`` and returns
    search.json's content."""
    sr, data, space, family = _setup(options)
    cfg, recipe, img = sr.cfg, sr.recipe, sr.image_size
    t = sr.prepare_table(space.grid_specs(extra=family))
    units = dict(recipe["mes"])
    params_of = ParamCounter()

    def predicted(net: V2Net) -> float:
        return sr.lut.latency(space.specs(net))

    def mes_of(net: V2Net, latency_ms: float) -> float:
        return mes(params_of(space.specs(net)), latency_ms, **units)

    # 1. supernet
    supernet = SlimmableSupernet(space)
    print(f"=== slimmable supernet: depths {list(space.depths)}, widths {list(space.widths)}, "
          f"ratios {list(space.ratios)}, {len(data.train)} training / {len(data.heldout)} "
          "held-out images", flush=True)
    info = train_supernet_v2(supernet, cfg, data, recipe["supernet_training"], sr.seed)
    t = sr.tick("supernet training", t)
    log = _search(sr, space, supernet, data, predicted, mes_of)   # 2. MES-driven search
    sr.lut.save()
    t = sr.tick("search", t)
    results = _networks(sr, space, log, family, data, predicted, mes_of)   # 3. networks
    sr.measure_networks(results)
    sr.tick("training and measurement", t)

    payload = {"schema": SCHEMA, "title": "EfficientFormerV2 fine-grained joint search (MES)",
               "paper": "arXiv:2212.08059 §4", "mes_constants": units, "supernet": {
                   "depths": list(space.depths), "widths": list(space.widths),
                   "ratios": list(space.ratios), "image_size": img,
                   "num_classes": data.num_classes, "action_pool": log["action_pool"],
                   "training": info},
               "start": log["start"], "results": results, "actions": log["steps"]}
    return sr.finish(payload, _report(log, results, units),
                     {"title": "EfficientFormerV2 MES search vs scaled S0",
                      "baseline_label": "S0 scaled by width/depth"})
