"""The ImageNet accuracy table: every model with its published weights, evaluated here.

For each model (default: every registered model with published weights), the default weight
(or ``tag``) is loaded through ``create_model(pretrained=...)`` (fetched, converted, cached) and
evaluated with :func:`ppnets.engine.evaluate.evaluate` with the preprocessing it was published
with -- or, with ``runtime``, exported on the fly (:func:`ppnets.deploy.cache.cached_export`) and
evaluated in that runtime (:func:`ppnets.engine.evaluate.evaluate_export`: fp32, its outputs
checked against the eager model's), several times faster on a CPU. The table puts our
top-1/top-5 beside the top-1 the weight's publisher claims (and where that claim comes from) and
the paper's (``model_info``). Models without published weights are
listed with the reason. Writes ``zoo_accuracy.json`` and ``zoo_accuracy.md`` (with the run
record) into the output folder; a model that fails is recorded and the others go on.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Dict, List, Optional, Sequence

from tqdm import tqdm

from ppnets.deploy.cache import cached_export
from ppnets.engine.evaluate import evaluate, evaluate_export
from ppnets.registry import list_models, model_info
from ppnets.utils import markdown_table
from ppnets.weights.pretrained import resolve_weight
from ppnets.weights.sources import weights_for

from .record import RunRecord, provenance_lines, save_json, save_text

__all__ = ["evaluate_zoo", "zoo_markdown", "data_description"]

SCHEMA = "ppnets.zoo_accuracy/1"


def evaluate_zoo(names: Optional[Sequence[str]], data: Dict[str, Any], record: RunRecord,
                 output_dir: str, tag: Optional[str] = None, batch_size: int = 64,
                 num_workers: Optional[int] = None, device: str = "cpu",
                 limit: Optional[int] = None, runtime: Optional[str] = None,
                 threads: Optional[int] = None) -> Dict[str, Any]:
    """Evaluate the models (``data``: ``data_dir`` or ``list_file`` + ``root``) and write the
    table; returns the report. ``runtime``: evaluate each model's export in that runtime (fp32)
    instead of the dygraph model."""
    names = list(names) if names else list_models()
    rows: List[Dict[str, Any]] = []
    for name in tqdm(names, desc="evaluating the zoo", unit="model"):
        info = model_info(name)
        row: Dict[str, Any] = {"model": name, "paper_top1": info.get("top1")}
        weights = weights_for(name)
        if not weights:
            row["note"] = "no published weights"
            rows.append(row)
            continue
        try:
            res = _evaluate_one(name, tag or True, data, batch_size, num_workers, device, limit,
                                runtime, threads)
        except Exception as exc:  # noqa: BLE001 - one model's failure is a row, not the end
            row["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
            rows.append(row)
            continue
        weight = res["weight"]
        if runtime:
            row.update(runtime=res["session"], output_check=res["check"].get("status"))
        row.update(tag=weight["tag"], top1=100 * res["top1"], top5=100 * res["top5"],
                   claimed_top1=weight.get("top1"), claimed_source=weight.get("top1_source"),
                   num_images=res["num_images"], images_per_s=res["images_per_s"],
                   preprocessing=res["preprocessing"])
        if weight.get("top1") is not None:
            row["delta_vs_claimed"] = row["top1"] - weight["top1"]
        rows.append(row)
        _write(output_dir, record, rows, data)
    record.finish()
    return _write(output_dir, record, rows, data)


def _evaluate_one(name: str, pretrained, data: Dict[str, Any], batch_size: int,
                  num_workers: Optional[int], device: str, limit: Optional[int],
                  runtime: Optional[str], threads: Optional[int]) -> Dict[str, Any]:
    kwargs = dict(data_dir=data.get("data_dir"), list_file=data.get("list_file"),
                  root=data.get("root"), num_workers=num_workers, limit=limit)
    if not runtime:
        return evaluate(name, pretrained, batch_size=batch_size, device=device, **kwargs)
    folder = cached_export(name, pretrained, batch_size=batch_size, runtime=runtime)
    res = evaluate_export(folder, runtime, threads=threads, **kwargs)
    res["weight"] = dataclasses.asdict(resolve_weight(name, pretrained))
    return res


def _write(output_dir: str, record: RunRecord, rows: List[Dict[str, Any]],
           data: Dict[str, Any]) -> Dict[str, Any]:
    report = {"schema": SCHEMA, "run": record.data, "data": data, "rows": rows}
    save_json(os.path.join(output_dir, "zoo_accuracy.json"), report)
    save_text(os.path.join(output_dir, "zoo_accuracy.md"), zoo_markdown(report))
    return report


def zoo_markdown(report: Dict[str, Any]) -> str:
    data = report["data"]
    lines = ["# ImageNet top-1 of the published weights, evaluated with ppnets", ""]
    if data.get("note"):
        lines += [f"> **{data['note']}**", ""]
    lines += provenance_lines(report["run"], data.get("description", str(data))) + [
        "- top-1/top-5: ours, on the images above, with each weight's own preprocessing; "
        "claimed: the weight publisher's number (source per row in the JSON); paper: "
        "model_info"]
    runtimes = sorted({f"{r['runtime']['runtime']} {r['runtime']['version']}"
                       for r in report["rows"] if r.get("runtime")})
    lines += [f"- evaluated in: {', '.join(runtimes) or 'the dygraph model'}"
              + (" (each model's fp32 export, its outputs checked against the eager model: "
                 "`output_check` in the JSON)" if runtimes else ""), ""]
    table = [[r["model"], r.get("tag"), r.get("top1"), r.get("top5"), r.get("claimed_top1"),
              r.get("delta_vs_claimed"), r.get("paper_top1"), r.get("num_images"),
              r.get("note") or r.get("error", "")] for r in report["rows"]]
    lines.append(markdown_table(
        ["model", "weight", "top-1 (%)", "top-5 (%)", "claimed top-1", "ours - claimed",
         "paper top-1", "images", "note"], table, digits=[0, 0, 2, 2, 2, 2, 1, 0, 0],
        align="---|---|---:|---:|---:|---:|---:|---:|---"))
    return "\n".join(lines) + "\n"


def data_description(data_dir: Optional[str] = None, list_file: Optional[str] = None,
                     root: Optional[str] = None) -> Dict[str, Any]:
    """The ``data`` argument of :func:`evaluate_zoo` for a validation folder (``data_dir``) or a
    PaddleClas list file (``list_file``, paths relative to ``root``), described for the
    report."""
    if list_file:
        return {"list_file": os.path.abspath(list_file), "root": root,
                "description": f"list {os.path.abspath(list_file)}"}
    if not data_dir:
        raise ValueError("give a validation folder (data_dir) or a list file (list_file)")
    return {"data_dir": os.path.abspath(data_dir),
            "description": f"folder {os.path.abspath(data_dir)}"}
