"""Zoo-wide Paddle Lite check: op compatibility per model and target, ``.nb`` conversion and
x86 ``.nb`` parity against the eager deploy-form model.

    ppnets deploy check --models '*' --jobs 2 --json results/deploy/zoo_lite.json \
        --markdown docs/deploy.md

For every model: deploy form (eval + reparameterize) -> legacy ``.pdmodel``
(:func:`ppnets.deploy.save_legacy`) -> ops vs Paddle Lite's own op listing per target
(:func:`ppnets.deploy.opcheck.check_program`; layer named for each unsupported/known-bad op) ->
``paddle_lite_opt`` for ``arm`` and ``x86`` -> the x86 ``.nb`` run by the Paddle Lite runtime
and compared with the eager output (:func:`ppnets.deploy.export.compare_outputs`: within
``atol * max(1, max|eager|)``, ``--atol`` default 1e-4). ARM ``.nb`` files are converted
but cannot be executed on an x86 host. With ``--markdown FILE`` the table between the markers
``<!-- zoo-lite-table:begin -->`` / ``<!-- zoo-lite-table:end -->`` in FILE is replaced.

Speed (the whole zoo in CI): each model is checked at its ``model_info`` ``test_input_size``
(``--size test``, the default; ``--size full`` uses ``input_size``); the Paddle side (build,
BN calibration, legacy export, op sources) runs for a batch of ``--batch-size`` models while
one Paddle Lite process converts and runs the previous batch (:func:`ppnets.deploy.lite.run_batch`:
a Lite abort costs only the step that caused it, which becomes the row's reason); ``--jobs N``
splits the zoo over N such worker processes. :func:`check_model` is the one-model form,
:func:`run` the zoo's, :func:`merge_reports` rebuilds a table from saved reports; the command
is ``ppnets deploy check`` (:mod:`ppnets.cli.deploy`).

``features_only=True`` (``ppnets deploy check --features-only``) checks every model's
features-only backbone instead (``create_model(name, features_only=True)``, its default maps):
the programs have one output per feature map, and the x86 ``.nb`` passes when every output is
within tolerance (:func:`ppnets.runtime.compare_all_outputs`).
"""
from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

import ppnets
from ppnets.registry import resolve_model_names
from ppnets.runtime import compare_all_outputs, save_legacy
from ppnets.utils import machine_info

from . import lite
from .lite import EXECUTABLE_TARGETS
from .opcheck import FIXES, IGNORED_OPS, KNOWN_BAD, check_program, op_sources, program_ops

BEGIN, END = "<!-- zoo-lite-table:begin -->", "<!-- zoo-lite-table:end -->"


def input_size_for(name: str, size: str = "full"):
    """``model_info`` ``input_size`` (``size="full"``) or, for ``"test"``, the smallest size at
    which a float32 deploy check means something: ``deploy_check_input_size`` when the family
    sets one (MobileOne: its random calibrated logits at 64x64 are ill-conditioned in float32),
    else ``test_input_size`` (the smallest size the family's tests use), else ``input_size``."""

    if size not in ("full", "test"):
        raise ValueError(f"size must be 'full' or 'test', got {size!r}")
    info = ppnets.model_info(name)
    if size == "test":
        for key in ("deploy_check_input_size", "test_input_size"):
            if info.get(key):
                return tuple(info[key])
    return tuple(info["input_size"])


def calibrated_deploy_model(name: str, seed: int = 0, batch: int = 8, size: str = "full",
                            features_only: bool = False):
    """Registry model (random weights drawn from ``seed``; its features-only backbone with
    ``features_only``) with BatchNorm statistics taken from one batch of N(0, 1) images, then
    eval + reparameterize: (model, input size) at :func:`input_size_for`.

    Random-init BN running stats (mean 0, var 1) let activations grow or vanish layer after
    layer (logits from 1e-18 to 1e+14 across the zoo), which makes an absolute tolerance
    meaningless; after this the logits are O(1) and a 1e-4 check means something.

    The weights come from ``seed`` (the caller's Paddle generator is left as it was) so a check
    is the same check on every run. Unseeded, one CI run drew a mobileone_s4 with logits of 7.8
    whose x86 ``.nb`` missed the 1e-4 bound (1.2e-3); on four other draws Paddle eager and the
    ``.nb`` were about equally far from a float64 forward, the float32 drift of the draw.
    """
    import paddle

    caller_rng = paddle.get_rng_state()
    paddle.seed(seed)  # the weights, and any dropout in the calibration pass
    try:
        return _calibrated(name, seed, batch, size, features_only)
    finally:
        paddle.set_rng_state(caller_rng)


def _calibrated(name, seed, batch, size, features_only):
    """:func:`calibrated_deploy_model` under its seeded generator."""
    import paddle

    info = ppnets.model_info(name)
    model = ppnets.create_model(info.get("name", name), features_only=features_only)
    size = input_size_for(name, size)
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


def deploy_reference(name: str, folder: str, seed: int = 0, size: str = "full",
                     features_only: bool = False):
    """Calibrated deploy form of ``name``, one N(0, 1) input, its eager outputs, and the legacy
    export in ``folder``: (model, input shape, x, reference outputs (a list: one for a
    classifier, one per map with ``features_only``), model file, params file)."""
    import paddle

    model, shape = calibrated_deploy_model(name, seed, size=size, features_only=features_only)
    x = np.random.default_rng(seed).standard_normal((1, *shape)).astype(np.float32)
    with paddle.no_grad():
        out = model(paddle.to_tensor(x))
    refs = [o.numpy() for o in (out if isinstance(out, (list, tuple)) else [out])]
    mf, pf = save_legacy(model, shape, 1, folder)
    return model, shape, x, refs, mf, pf


def check_model(name: str, supported: Dict[str, List[str]], workdir: str,
                targets: Sequence[str] = ("arm", "x86"), atol: float = 1e-4,
                python: Optional[str] = None, seed: int = 0,
                size: str = "full", features_only: bool = False) -> Dict[str, Any]:
    """One row of the zoo table (JSON-ready), one Paddle Lite process per step."""

    t0 = time.time()
    row: Dict[str, Any] = {"model": name, "targets": {}}
    folder = os.path.join(workdir, name)
    try:
        model, size, x, refs, mf, pf = deploy_reference(name, folder, seed, size,
                                                         features_only)
        row["input_size"] = list(size)
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
                outs = lite.run_nb(conv["nb_file"], x, python=python)
                t["parity"] = compare_all_outputs(outs, refs, atol)
        except Exception as exc:  # noqa: BLE001
            t["error"] = f"{type(exc).__name__}: {str(exc).strip()[-600:]}"
        row["targets"][target] = t
    row["seconds"] = round(time.time() - t0, 1)
    return row


def _cell(t: Dict[str, Any]) -> str:
    if not t:
        return "n/a"
    if "error" in t:
        return "error: " + t["error"].splitlines()[0][:110].replace("|", "/")
    bad = t.get("unsupported", []) + t.get("known_bad", [])
    ops = "ops OK" if not bad else "unsupported: " + ", ".join(bad)
    conv = "converted" if t.get("converted") else "opt failed"
    return f"{ops}; {conv}"


def row_ok(r: Dict[str, Any]) -> bool:
    """ARM ops all supported and converted, x86 ``.nb`` output within tolerance."""
    if "export_error" in r:
        return False
    arm, x86 = r["targets"].get("arm", {}), r["targets"].get("x86", {})
    par = x86.get("parity")
    return bool(not arm.get("unsupported") and not arm.get("known_bad") and arm.get("converted")
                and par is not None and par.get("status") == "passed")


def _size(row: Dict[str, Any]) -> str:
    size = row.get("input_size")
    return f"{size[1]}x{size[2]}" if size else "?"


def format_table(rows: Sequence[Dict[str, Any]]) -> str:
    lines = ["| model | input | ops | ARM (opt) | x86 (opt) | x86 `.nb` vs eager: max abs diff "
             "(max abs logit) | verdict |", "|---|---|---:|---|---|---|---|"]
    for r in rows:
        if "export_error" in r:
            lines.append(f"| {r['model']} | {_size(r)} | - | legacy export failed | - | - | "
                         f"FAIL: {r['export_error'].splitlines()[-1][:80]} |")
            continue
        arm, x86 = r["targets"].get("arm", {}), r["targets"].get("x86", {})
        par = x86.get("parity")
        par_s = "n/a" if not par else (f"{par['max_abs_diff']:.1e} ({par['ref_abs_max']:.1e})"
                                       if "max_abs_diff" in par else par.get("error", "n/a"))
        ok = row_ok(r)
        n_ops = len([o for o in (arm.get("ops") or x86.get("ops") or {})
                     if o not in ("feed", "fetch")])
        lines.append(f"| {r['model']} | {_size(r)} | {n_ops} | {_cell(arm)} | {_cell(x86)} "
                     f"| {par_s} | "
                     f"{'OK' if ok else 'FAIL'} |")
    return "\n".join(lines)


def update_markdown(path: str, table: str, header: str) -> None:
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


def prepare_model(name: str, supported: Dict[str, List[str]], folder: str,
                  targets: Sequence[str] = ("arm", "x86"), seed: int = 0,
                  size: str = "test", features_only: bool = False):
    """Paddle side of one row: calibrated deploy form -> legacy export in ``folder`` (inside
    the Lite exchange folder) -> op lists per target (and the producing layers of bad ops).

    Returns (row, job); ``job`` is None when the export failed (the row says why), else it
    holds the Lite steps (:func:`ppnets.deploy.lite.run_batch`) and the eager reference.
    """

    t0 = time.time()
    row: Dict[str, Any] = {"model": name, "targets": {}}
    try:
        model, shape, x, refs, mf, pf = deploy_reference(name, folder, seed, size,
                                                          features_only)
        row["input_size"] = list(shape)
        ops = program_ops(mf)
        for target in targets:
            have = set(supported[target])
            unsupported = sorted(o for o in ops if o not in have and o not in IGNORED_OPS)
            known_bad = sorted(o for o in ops if o in KNOWN_BAD)
            bad = unsupported + known_bad
            row["targets"][target] = {
                "ops": ops, "unsupported": unsupported, "known_bad": known_bad,
                "fixes": {o: FIXES.get(o, "no known fix: keep this op out of the deploy form")
                          for o in bad},
                "sources": op_sources(model, shape, bad) if bad else {}}
        del model
    except Exception as exc:  # noqa: BLE001 - one model must not stop the zoo
        row["export_error"] = f"{type(exc).__name__}: {str(exc).strip()[-600:]}"
        row["seconds"] = round(time.time() - t0, 1)
        return row, None
    np.savez(os.path.join(folder, "input.npz"), x=x)
    steps = []
    for target in targets:
        steps += [{"id": f"{name}|model_ops|{target}", "kind": "model_ops", "target": target,
                   "model_file": mf, "param_file": pf},
                  {"id": f"{name}|opt|{target}", "kind": "opt", "target": target,
                   "model_file": mf, "param_file": pf,
                   "out_prefix": os.path.join(folder, f"model_{target}")}]
    for target in (t for t in targets if t in EXECUTABLE_TARGETS):
        steps.append({"id": f"{name}|run|{target}", "kind": "run", "threads": 1,
                      "nb_file": os.path.join(folder, f"model_{target}.nb"),
                      "input_npz": os.path.join(folder, "input.npz"),
                      "output_npz": os.path.join(folder, f"output_{target}.npz")})
    row["seconds"] = round(time.time() - t0, 1)
    return row, {"steps": steps, "refs": refs, "folder": folder}


def _failure(rec: Dict[str, Any], what: str) -> str:
    """One-line reason from a failed/crashed Lite step (Paddle Lite's ``Check failed`` line
    when there is one)."""
    if "crash" in rec:
        log = rec.get("log", "")
        checks = [ln.strip() for ln in log.splitlines() if "Check failed" in ln]
        detail = checks[-1] if checks else (log.splitlines() or [""])[-1].strip()
        detail = detail.split("] ", 1)[-1]
        return f"{what}: {rec['crash']}: {detail}"[:600]
    return f"{what}: {rec.get('error') or rec.get('skipped')}"[:600]


def finish_row(row: Dict[str, Any], job: Dict[str, Any], records: Dict[str, Dict[str, Any]],
               atol: float) -> Dict[str, Any]:
    """Fill a prepared row with the Lite steps' records (conversion, Lite's verdict, parity)."""

    name = row["model"]
    lite_seconds = 0.0
    for target, t in row["targets"].items():
        ops_rec = records.get(f"{name}|model_ops|{target}", {})
        if "result" in ops_rec:
            t["lite_says_supported"] = "supports this model" in ops_rec["result"]["text"]
        opt = records.get(f"{name}|opt|{target}", {"error": "not run"})
        run = records.get(f"{name}|run|{target}")
        lite_seconds += sum(r.get("seconds", 0.0) for r in (ops_rec, opt, run or {}))
        if "result" not in opt:
            t["converted"] = False
            t["error"] = _failure(opt, f"paddle_lite_opt ({target})")
            continue
        t["converted"] = bool(opt["result"]["ok"])
        if not t["converted"]:
            t["opt_log_tail"] = opt["result"]["log"][-800:]
        if run is None or not t["converted"]:
            continue
        if "result" in run:
            outs = lite.read_outputs(os.path.join(job["folder"], f"output_{target}.npz"))
            t["parity"] = compare_all_outputs(outs, job["refs"], atol)
        else:
            t["error"] = _failure(run, f"{target} .nb run")
    row["seconds"] = round(row.get("seconds", 0.0) + lite_seconds, 1)
    return row


def _chunks(items: Sequence[str], n: int):
    for i in range(0, len(items), n):
        yield list(items[i:i + n])


def run_batched(names: Sequence[str], supported: Dict[str, List[str]],
                targets=("arm", "x86"), atol: float = 1e-4, python: Optional[str] = None,
                workdir: Optional[str] = None, progress=None, size: str = "test",
                batch_size: int = 6, seed: int = 0,
                features_only: bool = False) -> List[Dict[str, Any]]:
    """Rows for ``names``: the Paddle side of batch k+1 runs while one Paddle Lite process
    handles batch k. Exports live in the Lite exchange folder and are deleted after each row
    (copied to ``workdir`` first when given)."""
    import shutil
    import threading


    rows: List[Dict[str, Any]] = []
    with lite.lite_session(python) as session:
        def launch(prepared):
            box: Dict[str, Any] = {}
            steps = [st for _, job in prepared if job for st in job["steps"]]

            def work():
                try:
                    box["records"] = lite.run_batch(steps, session, python) if steps else {}
                except Exception as exc:  # noqa: BLE001 - becomes every row's reason
                    box["error"] = f"{type(exc).__name__}: {str(exc)[-600:]}"
            thread = threading.Thread(target=work, daemon=True)
            thread.start()
            return thread, box, prepared

        def collect(pending):
            thread, box, prepared = pending
            thread.join()
            for row, job in prepared:
                if job is not None:
                    if "error" in box:
                        for t in row["targets"].values():
                            t["error"] = "Paddle Lite batch failed: " + box["error"]
                    else:
                        finish_row(row, job, box["records"], atol)
                    if workdir:
                        shutil.copytree(job["folder"], os.path.join(workdir, row["model"]),
                                        dirs_exist_ok=True)
                    shutil.rmtree(job["folder"], ignore_errors=True)
                rows.append(row)
                if progress:
                    progress(row)

        pending = None
        for batch in _chunks(list(names), max(1, batch_size)):
            prepared = []
            for name in batch:
                folder = os.path.join(session, name)
                prepared.append(prepare_model(name, supported, folder, targets, seed, size,
                                              features_only))
            if pending:
                collect(pending)
            pending = launch(prepared)
        if pending:
            collect(pending)
    return rows


def run_worker(request_path: str) -> None:
    """One shard of a ``jobs`` run, in its own process: the request's models checked with
    :func:`run_batched`, each row appended to the request's ``out`` file as a JSON line."""
    with open(request_path, encoding="utf-8") as f:
        req = json.load(f)

    def emit(row):
        with open(req["out"], "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")

    run_batched(req["models"], req["supported"], tuple(req["targets"]), req["atol"],
                req["python"], req["workdir"], emit, req["size"], req["batch_size"], req["seed"],
                req["features_only"])


def _start_worker(tmp: str, i: int, shard: Sequence[str], request: Dict[str, Any]):
    """(process, its rows file) of one worker over ``shard``."""
    out = os.path.join(tmp, f"worker{i}.jsonl")
    open(out, "w").close()
    req_path = os.path.join(tmp, f"worker{i}.json")
    with open(req_path, "w", encoding="utf-8") as f:
        json.dump(dict(request, models=list(shard), out=out), f)
    code = "import sys; from ppnets.deploy.zoo_check import run_worker; run_worker(sys.argv[1])"
    return subprocess.Popen([sys.executable, "-c", code, req_path]), out


def _run_workers(names: Sequence[str], jobs: int, request: Dict[str, Any], progress=None):
    """``jobs`` worker processes (:func:`run_worker`), models dealt round-robin; rows in the
    order of ``names``."""
    shards = [list(names[i::jobs]) for i in range(jobs)]
    with tempfile.TemporaryDirectory(prefix="ppnets-zoo-workers-") as tmp:
        started = [_start_worker(tmp, i, shard, request)
                   for i, shard in enumerate(shards) if shard]
        procs, outs = [p for p, _ in started], [out for _, out in started]
        seen: Dict[str, Dict[str, Any]] = {}

        def poll():
            for out in outs:
                with open(out, encoding="utf-8") as f:
                    for line in f:
                        if not line.endswith("\n"):
                            continue
                        row = json.loads(line)
                        if row["model"] not in seen:
                            seen[row["model"]] = row
                            if progress:
                                progress(row)
        while any(p.poll() is None for p in procs):
            time.sleep(2)
            poll()
        poll()
        codes = [p.returncode for p in procs]
    return [seen.get(name) or {"model": name, "export_error":
                               f"RuntimeError: zoo worker exited {codes} without a row"}
            for name in names]


def run(models: Sequence[str], targets=("arm", "x86"), atol: float = 1e-4,
        python: Optional[str] = None, workdir: Optional[str] = None,
        progress=None, size: str = "test", batch_size: int = 6, jobs: int = 1,
        seed: int = 0, features_only: bool = False) -> Dict[str, Any]:
    """The zoo report: one row per model (:func:`run_batched`, or ``jobs`` worker processes);
    with ``features_only`` every model's features-only backbone (module docstring)."""

    names = resolve_model_names(list(models))
    listing = {t: lite.supported_ops(t, python) for t in targets}
    version = next(iter(listing.values()))["paddlelite"]
    supported = {t: v["ops"] for t, v in listing.items()}
    t0 = time.time()
    if jobs > 1 and len(names) > 1:
        request = {"supported": supported, "targets": list(targets), "atol": atol,
                   "python": python, "workdir": workdir, "size": size,
                   "batch_size": batch_size, "seed": seed, "features_only": features_only}
        rows = _run_workers(names, jobs, request, progress)
    else:
        rows = run_batched(names, supported, targets, atol, python, workdir, progress, size,
                           batch_size, seed, features_only)
    return {"schema": "ppnets.deploy.zoo_lite/1", "paddlelite": version, "atol": atol,
            "targets": list(targets), "size": size, "features_only": features_only,
            "seed": seed, "batch_size": batch_size, "jobs": jobs,
            "wall_seconds": round(time.time() - t0, 1),
            "machine": machine_info(device="cpu", threads=1, mkldnn=False),
            "timestamp_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds"), "rows": rows}


def run_description(report: Dict[str, Any]) -> str:
    """One sentence saying which zoo run a table comes from, read from its JSON report."""
    size = "model_info test_input_size" if report.get("size") == "test" else "input_size"
    m = report.get("machine") or {}
    passed = sum(row_ok(r) for r in report["rows"])
    what = " (features-only backbones: every map checked)" if report.get("features_only") else ""
    return (f"Run{what}: `{report['command']}`, finished {report.get('timestamp_utc')}, "
            f"{report.get('wall_seconds', 0) / 60:.1f} min wall on {m.get('cpu_model')} "
            f"({m.get('available_cores')} cores, load {m.get('load_avg')}), Paddle Lite "
            f"{report.get('paddlelite')}, input size: {size}, weights from seed "
            f"{report.get('seed', 'none (before seeding)')}, batch {report.get('batch_size')}: "
            f"{passed}/{len(report['rows'])} pass under `atol * max(1, max|ref|)` with atol "
            f"{report.get('atol')}.")


def merge_reports(paths: Sequence[str]) -> Dict[str, Any]:
    """Saved reports (or ``.partial`` files) merged: a model's row in a later file replaces the
    one in an earlier file. Returns ``rows``, ``sources`` (file names), ``runs`` (each report's
    :func:`run_description`) and ``partial`` (whether any file was an interrupted run)."""
    rows: Dict[str, Dict[str, Any]] = {}
    sources, runs, partial = [], [], False
    for path in paths:
        with open(path, encoding="utf-8") as f:
            saved = json.load(f)
        partial = partial or bool(saved.get("partial"))
        sources.append(f"{os.path.basename(path)}{' (partial)' if saved.get('partial') else ''}")
        if saved.get("command"):
            runs.append(run_description(saved))
        for row in saved["rows"]:
            rows[row["model"]] = row  # a re-checked model keeps its place
    return {"rows": list(rows.values()), "sources": sources, "runs": runs, "partial": partial}


if __name__ == "__main__":
    print("error: python -m ppnets.deploy.zoo_check is now `ppnets deploy check ...` (the same "
          "options)", file=sys.stderr)
    sys.exit(2)
