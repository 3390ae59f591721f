"""EfficientFormer's latency-driven slimming, end to end (arXiv:2206.01191 §4).

1. Train the supernet of MetaPaths (:mod:`.supernet_v1`): weights and architecture parameters
   alpha jointly, Gumbel-softmax with an annealed temperature.
2. Importance of every MP and stage from ``softmax(alpha)`` (:meth:`.space_v1.V1Space.mp_scores`).
3. From the whole supernet, greedy slimming (:func:`.slimming.greedy_slimming`) over the action
   space {least important MP -> identity, first MB3D removed, least important stage narrowed by
   16}: every action's latency from the table (:mod:`.lut`), its accuracy on the held-out split
   (the subnet inherits the supernet's weights, BatchNorm re-estimated), the action with the
   smallest accuracy drop per ms saved taken; until the smallest latency target, each target's
   network being the first state under it.
4. For each target: the network as ``create_model("efficientformer_l1", **kwargs)`` kwargs, its
   predicted and measured latency, and EfficientFormer-L1 scaled down by width and depth alone
   to the same predicted budget (the paper's comparison, Fig. 1 / Table 1); both trained
   briefly with the config's recipe.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List

from ppnets.engine import evaluate_network
from ppnets.factory import create_model

from .data import SearchData
from .runner import SearchOptions, SearchRun, format_table, pick_baseline
from .sharing import inherit, recalibrate_bn
from .slimming import greedy_slimming
from .space_v1 import FAMILY, V1Arch, V1Net, V1Space
from .supernet_v1 import V1Supernet, train_supernet_v1

__all__ = ["search", "export_grid", "RECIPE", "OUTPUT_DIR"]

SCHEMA = "ppnets.search.efficientformer/1"
RECIPE = "search/efficientformer_cifar10"   # the shipped recipe (ppnets configs show NAME)
OUTPUT_DIR = "outputs/search/efficientformer"


def _setup(options: SearchOptions):
    """(run, data, search space, scaled-L1 baseline family)."""
    sr = SearchRun(options, RECIPE)
    sup = sr.supernet
    data = sr.load_data()
    space = V1Space(sr.image_size, sup["depths"], sup["widths"], data.num_classes,
                    width_step=int(sup.get("width_step", 16)))
    return sr, data, space, space.scaled_l1_family(sr.recipe["baseline_factors"])


def export_grid(options: SearchOptions) -> Dict[str, Any]:
    """Every block of the search grid (and of the baselines) as a Paddle Lite ``.nb`` with the
    device-side timer, into ``options.export_lite_grid``; returns the grid's manifest."""
    sr, _, space, family = _setup(options)
    return sr.export_grid(space.grid_specs(extra=family))


def _slim(sr: SearchRun, space: V1Space, supernet: V1Supernet, data: SearchData,
          predicted: Callable[[V1Net], float]) -> Dict[str, Any]:
    """Steps 2 and 3: importance from the architecture parameters, then greedy slimming from
    the whole supernet to the latency targets (held-out accuracy of each candidate)."""
    cfg, recipe, img = sr.cfg, sr.recipe, sr.image_size
    probs = supernet.probabilities()
    scores = space.mp_scores(probs)
    source = supernet.state_dict()
    calib = data.calibration_batches(int(recipe["bn_calibration"]["batches"]),
                                     int(recipe["bn_calibration"]["batch_size"]), sr.seed)
    heldout = data.heldout_loader(int(cfg["data"]["eval_batch_size"] or 64))

    def accuracy(arch: V1Arch) -> float:
        model = create_model(FAMILY, num_classes=data.num_classes, **arch.net.kwargs(img))
        inherit(model, source, space.name_map(arch))
        recalibrate_bn(model, calib)
        return evaluate_network(model, heldout).top1

    start = space.start(probs)
    targets = sr.targets(predicted(start.net))
    print(f"=== slimming to {targets} ms ({sr.lut.target} table)", flush=True)
    log = greedy_slimming(
        start, targets, propose=lambda a: space.actions(a, scores, lambda b: predicted(b.net)),
        latency_ms=lambda a: predicted(a.net), accuracy=accuracy,
        efficiency=lambda a, lat: -lat, describe=lambda a: a.describe(),
        progress=lambda s: print(f"  step {s['step']}: {s['action']}: {s['latency_ms']:.3f} ms, "
                                 f"held-out {s['accuracy']:.4f}", flush=True))
    return dict(log, mp_scores=scores)


def _networks(sr: SearchRun, log: Dict[str, Any], family: List[V1Net], data: SearchData,
              predicted: Callable[[V1Net], float]) -> List[Dict[str, Any]]:
    """Step 4: each target's network and the scaled-L1 baseline at its budget, trained."""
    img = sr.image_size
    results = []
    for res in log["results"]:
        state = res["state"]
        net = V1Net(tuple(state["depths"]), tuple(state["widths"]), state["num_vit"])
        tag = f"{res['target_ms']:g}ms"
        row = sr.network_row(f"searched_{tag}", FAMILY, net.kwargs(img), res["latency_ms"],
                             (3, img, img), data.num_classes, heldout_accuracy=res["accuracy"])
        base = pick_baseline(family, predicted, res["target_ms"])
        baseline = None
        if base is not None:
            bnet, blat = base
            baseline = sr.network_row(f"scaled_l1_{tag}", FAMILY, bnet.kwargs(img), blat,
                                      (3, img, img), data.num_classes)
        results.append({"target_ms": res["target_ms"], "reached": res["reached"],
                        "step": res["step"], **row, "baseline": baseline})
    return results


def search(options: SearchOptions) -> Dict[str, Any]:
    """The whole search; writes the result files into ``options.out_root`` and returns
    search.json's content."""
    sr, data, space, family = _setup(options)
    cfg, recipe, img = sr.cfg, sr.recipe, sr.image_size
    t = sr.prepare_table(space.grid_specs(extra=family))

    def predicted(net: V1Net) -> float:
        return sr.lut.latency(space.specs(net))

    # 1. supernet
    supernet = V1Supernet(space)
    print(f"=== supernet: depths {list(space.depths)}, widths {list(space.widths)}, "
          f"{len(data.train)} training / {len(data.heldout)} held-out images", flush=True)
    info = train_supernet_v1(supernet, cfg, data, recipe["supernet_training"], sr.seed)
    t = sr.tick("supernet training", t)
    log = _slim(sr, space, supernet, data, predicted)   # 2. importance, 3. slimming
    sr.lut.save()
    t = sr.tick("slimming", t)
    results = _networks(sr, log, family, data, predicted)   # 4. networks and baselines
    sr.measure_networks(results)
    sr.tick("training and measurement", t)

    payload = {"schema": SCHEMA, "title": "EfficientFormer latency-driven slimming (V1)",
               "paper": "arXiv:2206.01191 §4", "supernet": {
                   "depths": list(space.depths), "widths": list(space.widths),
                   "image_size": img, "num_classes": data.num_classes, "training": info,
                   "mp_scores": log["mp_scores"]},
               "start": log["start"], "results": results, "actions": log["steps"]}
    md = ["## Results", ""] + format_table(results) + [
        "", "## Action log", "", "| step | action | predicted (ms) | held-out acc | drop/ms |",
        "|---:|---|---:|---:|---:|"] + [
        f"| {s['step']} | {s['action']} | {s['latency_ms']:.3f} | {s['accuracy']:.4f} | "
        f"{s['ratio']:.4f} |" for s in log["steps"]]
    return sr.finish(payload, md, {"title": "EfficientFormer slimming vs scaled L1",
                                   "baseline_label": "L1 scaled by width/depth"})
