"""Zoo-wide Paddle Lite check: op compatibility per model and target, ``.nb`` conversion and
x86 ``.nb`` parity against the eager deploy-form model.

    python -m ppnets.deploy.zoo_check --models '*' --json results/deploy/zoo_lite.json \
        --markdown docs/deploy.md

For every model: deploy form (eval + reparameterize) -> legacy ``.pdmodel``
(:func:`ppnets.deploy.save_legacy`) -> ops vs Paddle Lite's own op listing per target
(:func:`ppnets.deploy.opcheck.check_program`; layer named for each unsupported/known-bad op) ->
``paddle_lite_opt`` for ``arm`` and ``x86`` -> the x86 ``.nb`` run by the Paddle Lite runtime
and compared with the eager output (``--atol``, default 1e-4). ARM ``.nb`` files are converted
but cannot be executed on an x86 host. With ``--markdown FILE`` the table between the markers
``<!-- zoo-lite-table:begin -->`` / ``<!-- zoo-lite-table:end -->`` in FILE is replaced.
"""
from __future__ import annotations

import argparse
import datetime
import os
import shlex
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

BEGIN, END = "<!-- zoo-lite-table:begin -->", "<!-- zoo-lite-table:end -->"


def calibrated_deploy_model(name: str, seed: int = 0, batch: int = 8):
    """Registry model (random weights) with BatchNorm statistics taken from one batch of
    N(0, 1) images, then eval + reparameterize: (model, input size).

    Random-init BN running stats (mean 0, var 1) let activations grow or vanish layer after
    layer (logits from 1e-18 to 1e+14 across the zoo), which makes an absolute tolerance
    meaningless; after this the logits are O(1) and a 1e-4 check means something.
    """
    import paddle

    import ppnets

    info = ppnets.model_info(name)
    model = ppnets.create_model(info.get("name", name))
    size = tuple(info["input_size"])
    bns = [m for m in model.sublayers() if isinstance(m, (paddle.nn.layer.norm._BatchNormBase, paddle.nn.BatchNorm))]
    saved = [m._momentum for m in bns]
    for m in bns:
        m._momentum = 0.0  # running stats := this batch's stats
    model.train()
    x = paddle.to_tensor(np.random.default_rng(seed + 1).standard_normal(
        (batch, *size)).astype(np.float32))
    with paddle.no_grad():
        model(x)
    for m, mom in zip(bns, saved):
        m._momentum = mom
    model.eval()
    ppnets.reparameterize_model(model)
    return model, size


def check_model(name: str, supported: Dict[str, List[str]], workdir: str,
                targets: Sequence[str] = ("arm", "x86"), atol: float = 1e-4,
                python: Optional[str] = None, seed: int = 0) -> Dict[str, Any]:
    """One row of the zoo table (JSON-ready)."""
    import paddle

    from . import lite
    from .export import compare_outputs
    from .legacy import save_legacy
    from .opcheck import check_program

    t0 = time.time()
    row: Dict[str, Any] = {"model": name, "targets": {}}
    try:
        model, size = calibrated_deploy_model(name, seed)
        row["input_size"] = list(size)
        x = np.random.default_rng(seed).standard_normal((1, *size)).astype(np.float32)
        with paddle.no_grad():
            ref = model(paddle.to_tensor(x)).numpy()
        folder = os.path.join(workdir, name)
        mf, pf = save_legacy(model, size, 1, folder)
    except Exception as exc:  # noqa: BLE001 - one model must not stop the zoo
        row["export_error"] = f"{type(exc).__name__}: {str(exc).strip()[-600:]}"
        row["seconds"] = round(time.time() - t0, 1)
        return row
    for target in targets:
        t: Dict[str, Any] = {}
        try:
            rep = check_program(mf, target, python, model=model, input_size=size,
                                supported=supported[target])
            t.update(ops=rep["ops"], unsupported=rep["unsupported"], known_bad=rep["known_bad"],
                     fixes=rep["fixes"], sources=rep.get("sources", {}),
                     lite_says_supported=rep.get("lite_model_check", {}).get("supported"))
            conv = lite.convert(mf, pf, os.path.join(folder, f"model_{target}"), target, python)
            t["converted"] = bool(conv["ok"])
            if not conv["ok"]:
                t["opt_log_tail"] = conv["log"][-800:]
            elif target in lite.EXECUTABLE_TARGETS:
                out = lite.run_nb(conv["nb_file"], x, python=python)
                t["parity"] = compare_outputs(out, ref, atol)
        except Exception as exc:  # noqa: BLE001
            t["error"] = f"{type(exc).__name__}: {str(exc).strip()[-600:]}"
        row["targets"][target] = t
    row["seconds"] = round(time.time() - t0, 1)
    return row


def _cell(t: Dict[str, Any]) -> str:
    if not t:
        return "n/a"
    if "error" in t:
        return "error: " + t["error"].splitlines()[0][:60]
    bad = t.get("unsupported", []) + t.get("known_bad", [])
    ops = "ops OK" if not bad else "unsupported: " + ", ".join(bad)
    conv = "converted" if t.get("converted") else "opt failed"
    return f"{ops}; {conv}"


def format_table(rows: Sequence[Dict[str, Any]]) -> str:
    lines = ["| model | ops | ARM (opt) | x86 (opt) | x86 `.nb` vs eager: max abs diff "
             "(max abs logit) | verdict |", "|---|---:|---|---|---|---|"]
    for r in rows:
        if "export_error" in r:
            lines.append(f"| {r['model']} | - | legacy export failed | - | - | "
                         f"{r['export_error'].splitlines()[-1][:80]} |")
            continue
        arm, x86 = r["targets"].get("arm", {}), r["targets"].get("x86", {})
        par = x86.get("parity")
        par_s = "n/a" if not par else (f"{par['max_abs_diff']:.1e} ({par['ref_abs_max']:.1e})"
                                       if "max_abs_diff" in par else par.get("error", "n/a"))
        ok = (not arm.get("unsupported") and not arm.get("known_bad") and arm.get("converted")
              and par is not None and par.get("status") == "passed")
        n_ops = len([o for o in (arm.get("ops") or x86.get("ops") or {})
                     if o not in ("feed", "fetch")])
        lines.append(f"| {r['model']} | {n_ops} | {_cell(arm)} | {_cell(x86)} | {par_s} | "
                     f"{'OK' if ok else 'FAIL'} |")
    return "\n".join(lines)


def update_markdown(path: str, table: str, header: str) -> None:
    from ppnets.bench.harness import write_json  # noqa: F401 - same atomic style below

    with open(path, encoding="utf-8") as f:
        text = f.read()
    if BEGIN not in text or END not in text:
        raise ValueError(f"{path} has no {BEGIN} ... {END} markers for the table")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{BEGIN}\n{header}\n\n{table}\n{END}{tail}"
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(new)
    os.replace(tmp, path)


def run(models: Sequence[str], targets=("arm", "x86"), atol: float = 1e-4,
        python: Optional[str] = None, workdir: Optional[str] = None,
        progress=None) -> Dict[str, Any]:
    from ppnets.bench.harness import resolve_model_names
    from ppnets.bench.machine import machine_info

    from . import lite

    names = resolve_model_names(list(models))
    supported = {t: lite.supported_ops(t, python) for t in targets}
    version = next(iter(supported.values()))["paddlelite"]
    supported = {t: v["ops"] for t, v in supported.items()}
    rows = []
    with tempfile.TemporaryDirectory(prefix="ppnets-zoo-lite-") as tmp:
        for name in names:
            row = check_model(name, supported, workdir or tmp, targets, atol, python)
            rows.append(row)
            if progress:
                progress(row)
    return {"schema": "ppnets.deploy.zoo_lite/1", "paddlelite": version, "atol": atol,
            "targets": list(targets), "machine": machine_info(device="cpu", threads=1,
                                                              mkldnn=False),
            "timestamp_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds"), "rows": rows}


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python -m ppnets.deploy.zoo_check")
    p.add_argument("--models", nargs="+", default=["*"])
    p.add_argument("--targets", nargs="+", default=["arm", "x86"], choices=["arm", "x86"])
    p.add_argument("--atol", type=float, default=1e-4)
    p.add_argument("--json", default=None)
    p.add_argument("--markdown", default=None, help="file with the table markers to update")
    p.add_argument("--workdir", default=None, help="keep exports and .nb files here")
    p.add_argument("--expect-fail", nargs="*", default=[], metavar="NAME",
                   help="documented failures (docs/deploy.md): exit 1 only for other failures, "
                        "or when one of these passes (strict)")
    p.add_argument("--from-json", nargs="+", default=None, metavar="JSON",
                   help="only (re)write the table from saved reports (or .partial files); a "
                        "model's row in a later file replaces the one in an earlier file")
    p.add_argument("--merged-json", default=None, help="with --from-json: write the merge")
    args = p.parse_args(argv)
    from ppnets.bench.harness import write_json

    if args.from_json:
        import json
        rows: Dict[str, Dict[str, Any]] = {}
        sources, partial = [], False
        for path in args.from_json:
            with open(path, encoding="utf-8") as f:
                saved = json.load(f)
            partial = partial or bool(saved.get("partial"))
            sources.append(f"{os.path.basename(path)}{' (partial)' if saved.get('partial') else ''}")
            for row in saved["rows"]:
                rows.pop(row["model"], None)
                rows[row["model"]] = row
        merged = list(rows.values())
        table = format_table(merged)
        print(table)
        if args.merged_json:
            write_json({"schema": "ppnets.deploy.zoo_lite/1", "partial": partial,
                        "merged_from": sources, "rows": merged}, args.merged_json)
        if args.markdown:
            header = (f"Generated by `python -m ppnets.deploy.zoo_check {shlex.join(argv)}` "
                      f"from {', '.join(sources)}: {len(merged)} models"
                      f"{' (PARTIAL: interrupted zoo runs; re-run the full command)' if partial else ''}.")
            update_markdown(args.markdown, table, header)
        return 0

    def progress(row):
        print(format_table([row]).splitlines()[-1], file=sys.stderr, flush=True)
        if args.json:  # partial results survive an interrupted zoo run
            partial.append(row)
            write_json({"partial": True, "rows": partial}, args.json + ".partial")

    partial: List[Dict[str, Any]] = []
    report = run(args.models, tuple(args.targets), args.atol, workdir=args.workdir,
                 progress=progress)
    report["command"] = "python -m ppnets.deploy.zoo_check " + shlex.join(argv)
    table = format_table(report["rows"])
    print(table)
    if args.json:
        write_json(report, args.json)
        if os.path.exists(args.json + ".partial"):
            os.remove(args.json + ".partial")
    if args.markdown:
        header = (f"Generated by `{report['command']}` on {report['timestamp_utc']} "
                  f"(Paddle Lite {report['paddlelite']}, x86 tolerance {args.atol}).")
        update_markdown(args.markdown, table, header)
    failed = {r["model"] for r in report["rows"] if "| FAIL |" in format_table([r])}
    expected = set(args.expect_fail)
    unexpected, fixed = sorted(failed - expected), sorted(expected - failed)
    if unexpected or fixed:
        print(f"unexpected failures: {unexpected}; expected failures that passed: {fixed}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
