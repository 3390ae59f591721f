"""``fit(config)``: train and evaluate a registry model on CIFAR-10 or ImageNet with
``paddle.Model``, on one device or data-parallel under ``python -m paddle.distributed.launch``
(rank 0 alone logs and writes files; see docs/training.md, "Distributed training").

The driver is ``paddle.Model.fit`` running the engine's one training step
(:class:`~ppnets.engine.step.EngineModel`, :func:`~ppnets.engine.step.train_step`); evaluation
is the task's (classification: :func:`~ppnets.engine.evaluate.evaluate_network`). This module
adds what a reproduction needs around them:

* resumable runs: after every ``save_freq`` epochs an atomic checkpoint (model, optimizer with
  the LR-scheduler state, engine state) is written; calling ``fit`` again with the same
  ``output_dir`` continues from the newest completed epoch (``paddle.Model.fit`` has no start
  epoch, so the remaining epochs are run and our callbacks add the offset);
* determinism per epoch: at the start of global epoch ``e`` python/numpy/paddle are reseeded
  with ``seed + e`` and the batch order is a function of ``(seed, e)``
  (:class:`~ppnets.engine.data.EpochBatchSampler`), so "2 epochs" and "1 epoch, stop, resume 1
  more" give the same weights;
* VisualDL logs (``<output_dir>/vdl``), the resolved config (``checkpoints/config.yaml``) and a
  results dict (``<output_dir>/results.json``);
* a task (:class:`~ppnets.engine.task.Task`; default
  :class:`~ppnets.engine.task.ClassificationTask`) supplies the loss, the running train metric
  and the evaluation, so a dense task (segmentation over a features-only backbone) trains
  through the same step with its own network and data sets (``fit(cfg, model=net,
  data=(train_set, val_set), task=...)``);
* image files checked before the first step (:func:`~ppnets.engine.datacheck.screen_datasets`,
  cached in ``checkpoints/datacheck.json``): ``data.on_bad_image: error`` stops with the list of
  unreadable files, ``skip`` leaves them out; files that fail to decode later are replaced by a
  neighbour (``skip``) and recorded (``bad_images`` in the results), or stop the run with an error
  naming the file within seconds (``error``; :class:`~ppnets.engine.data.FailFastDataLoader`).
"""
from __future__ import annotations

import copy
import os
import shutil
import sys
import time
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

import paddle
import paddle.nn as nn

import ppnets
from ppnets.utils import atomic_write, atomic_write_json, atomic_write_text, is_rank0

from .checkpoint import (load_checkpoint, portable_optimizer_state, prune_checkpoints, read_latest,
                         restore_optimizer_state, save_checkpoint)
from .config import apply_overrides, config_differences, dump_config, load_config, read_saved_config
from .data import (EpochBatchSampler, FailFastDataLoader, ImageListDataset, build_datasets,
                   default_num_workers, seed_everything)
from .datacheck import screen_datasets
from .distill import DistillationLoss, DistillationNet, build_teacher
from .ema import ModelEma
from .finetune import apply_layer_decay, freeze, trainable_parameters
from .step import EngineModel, build_train_parts, epoch_line
from .task import ClassificationTask, Task

__all__ = ["fit", "build_model", "ResumeMismatchError", "OffsetVisualDL"]


class ResumeMismatchError(RuntimeError):
    """The config differs from the one of the checkpointed run in ``output_dir``."""


def build_model(cfg: Mapping, num_classes: int = 10):
    """The config's model: ``model.kwargs``, pretrained weights (``model.pretrained``; a new
    classifier when the data's classes differ), frozen parts (``model.freeze``) and layer-wise
    learning rates (``optim.layer_decay``)."""
    kwargs = dict(cfg["model"].get("kwargs") or {})
    net = ppnets.create_model(cfg["model"]["name"], num_classes=num_classes,
                              pretrained=cfg["model"].get("pretrained"), **kwargs)
    freeze(net, cfg["model"].get("freeze"))
    if cfg["optim"].get("layer_decay"):
        apply_layer_decay(net, float(cfg["optim"]["layer_decay"]))
    return net


def given_datasets(data: Sequence, data_cfg: Mapping) -> Tuple[Any, Any, int]:
    """``(train_set, eval_set, num_classes)`` of the data sets given to ``fit``: the classes are
    ``data.num_classes`` when set, else the training set's ``num_classes`` or ``classes``."""
    if not isinstance(data, (list, tuple)) or len(data) != 2:
        raise ValueError("fit(data=...) takes (train_set, val_set): two paddle.io.Dataset "
                         f"objects; got {type(data).__name__}")
    train_set, val_set = data
    num_classes = data_cfg.get("num_classes") or getattr(train_set, "num_classes", None)
    if not num_classes and getattr(train_set, "classes", None) is not None:
        num_classes = len(train_set.classes)
    if not num_classes:
        raise ValueError(f"fit(data=...): {type(train_set).__name__} says nothing about its "
                         "classes (no num_classes or classes attribute); set data.num_classes")
    return train_set, val_set, int(num_classes)


class OffsetVisualDL(paddle.callbacks.VisualDL):
    """``paddle.callbacks.VisualDL`` whose steps and epochs continue across resumptions."""

    def __init__(self, log_dir: str, start_epoch: int, steps_per_epoch: int):
        super().__init__(log_dir)
        self.start_epoch = start_epoch
        self.steps_per_epoch = steps_per_epoch

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self.train_step = self.start_epoch * self.steps_per_epoch

    def on_epoch_begin(self, epoch=None, logs=None):
        super().on_epoch_begin(epoch, logs)
        self.epoch = self.start_epoch + epoch

    def log_eval(self, epoch: int, logs: Mapping) -> None:
        """Write evaluation metrics of global ``epoch`` (0-based) like the built-in eval does."""
        self.eval_metrics, self.eval_step = list(logs), 0
        saved, self.epoch = self.epoch, epoch
        self._updates(dict(logs), "eval")
        self.epoch = saved


class _Reseed(paddle.callbacks.Callback):
    """At the start of global epoch ``e``: python/numpy/paddle seeded with ``seed + e``, so a
    resumed run draws what an uninterrupted one would."""

    def __init__(self, seed: int, start_epoch: int):
        super().__init__()
        self.seed, self.start_epoch = seed, start_epoch

    def on_epoch_begin(self, epoch=None, logs=None):
        seed_everything(self.seed + self.start_epoch + epoch)


class _Run:
    """State of one ``fit`` call."""

    def __init__(self, cfg: dict, stop_after_epoch: Optional[int],
                 model: Optional[nn.Layer] = None, data: Optional[Sequence] = None,
                 task: Optional[Task] = None):
        self.cfg = cfg
        self.given_model = model
        self.given_data = data
        self.task = ClassificationTask() if task is None else task
        if isinstance(self.task, type) or not self.task.metrics:
            raise ValueError(f"fit(task=...) takes a Task instance whose metrics name what its "
                             f"evaluation returns; got {self.task!r}")
        self.out = cfg["output_dir"]
        self.ckpt_dir = os.path.join(self.out, "checkpoints")
        train = cfg["train"]
        self.seed = int(train["seed"])
        self.epochs = int(train["epochs"])
        self.end = self.epochs if stop_after_epoch is None else min(self.epochs,
                                                                    int(stop_after_epoch))
        self.state: Dict[str, Any] = {"epoch": 0,
                                      **{f"best_{m}": None for m in self.task.metrics},
                                      "best_epoch": None, "history": [], "train_time_s": 0.0,
                                      "train_images": 0, "wall_time_s": 0.0,
                                      "unreadable_during_run": []}
        self.resumed_from: Optional[int] = None
        self.start_epoch = 0
        self.world_size = paddle.distributed.get_world_size()
        self.main = is_rank0()

    # ---- setup -------------------------------------------------------------------------
    def prepare_output_dir(self) -> Optional[dict]:
        """The checkpoint to resume from (None: start), after checking that it was made with
        this config; with ``train.resume=false`` the previous run is moved aside."""
        pointer = read_latest(self.ckpt_dir) if os.path.isdir(self.ckpt_dir) else None
        if pointer is None:
            return None
        if self.cfg["train"]["resume"]:
            saved_path = os.path.join(self.ckpt_dir, "config.yaml")
            if os.path.isfile(saved_path):
                diffs = config_differences(read_saved_config(saved_path), self.cfg)
                if diffs:
                    raise ResumeMismatchError(
                        f"{self.out} holds a run (epoch {pointer['epoch']}) trained with a "
                        "different config:\n  " + "\n  ".join(diffs) +
                        "\nUse a new output_dir, or set train.resume=false (--no-resume) to "
                        "start over (the old run is moved aside, not deleted).")
            return pointer
        if is_rank0():   # an explicit restart keeps the previous run, never overwritten
            self.archive_previous_run()
        return None

    def archive_previous_run(self) -> None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        archive, n = os.path.join(self.out, f"previous-{stamp}"), 1
        while os.path.exists(archive):
            n += 1
            archive = os.path.join(self.out, f"previous-{stamp}-{n}")
        os.makedirs(archive)
        for name in ("checkpoints", "vdl", "results.json"):
            src = os.path.join(self.out, name)
            if os.path.exists(src):
                shutil.move(src, os.path.join(archive, name))
        print(f"[ppnets.engine] train.resume=false: previous run moved to {archive}")

    def setup(self) -> None:
        device = self.cfg["device"]
        if device == "gpu" and not paddle.device.is_compiled_with_cuda():
            raise RuntimeError("device=gpu but this paddlepaddle build has no CUDA support; "
                               "install paddlepaddle-gpu or use --device cpu")
        paddle.set_device(device)
        if self.world_size > 1:
            # Data parallel under `python -m paddle.distributed.launch`: the collective context
            # must exist before paddle.Model wraps the network in DataParallel.
            paddle.distributed.init_parallel_env()
        pointer = self.prepare_output_dir()
        seed_everything(self.seed)
        self.setup_data()
        self.setup_model()
        self.setup_optimizer()
        if pointer is not None:
            self.restore(pointer)
        if is_rank0():
            atomic_write_text(os.path.join(self.ckpt_dir, "config.yaml"), dump_config(self.cfg))
            if getattr(self.train_set, "classes", None):   # export and predict name them
                atomic_write_json(os.path.join(self.ckpt_dir, "classes.json"),
                                  {"class_names": list(self.train_set.classes)})

    def setup_data(self) -> None:
        """Data sets (image files screened first), samplers and loaders. Training batches are
        sharded across ranks by EpochBatchSampler (it reads the world size and rank), and so
        are evaluation batches, unpadded: every image is evaluated once, on one rank."""
        data, train = self.cfg["data"], self.cfg["train"]
        if self.given_data is None:
            self.train_set, self.test_set, self.num_classes = build_datasets(self.cfg)
        else:
            self.train_set, self.test_set, self.num_classes = given_datasets(self.given_data,
                                                                             data)
        self.screening = None
        if isinstance(self.train_set, ImageListDataset):
            # every rank checks its share of the files; all get the same sample lists
            sets, self.screening = screen_datasets(
                {"train": self.train_set, "val": self.test_set}, data["on_bad_image"],
                image_size=int(data["image_size"]),
                cache_file=os.path.join(self.ckpt_dir, "datacheck.json"), log=self.main,
                progress=self.main and bool(train["verbose"]), world_size=self.world_size,
                rank=paddle.distributed.get_rank())
            self.train_set, self.test_set = sets["train"], sets["val"]
        self.train_sampler = EpochBatchSampler(
            len(self.train_set), data["batch_size"], shuffle=True, seed=self.seed,
            max_batches=train["max_steps_per_epoch"])
        eval_sampler = EpochBatchSampler(len(self.test_set),
                                         data["eval_batch_size"] or data["batch_size"],
                                         shuffle=False, max_batches=train["max_eval_steps"],
                                         pad=False)
        nw = default_num_workers() if data["num_workers"] is None else int(data["num_workers"])
        collate = self.task.train_collate(self.cfg, self.num_classes)
        self.train_loader = FailFastDataLoader(self.train_set, batch_sampler=self.train_sampler,
                                               num_workers=nw, return_list=True,
                                               collate_fn=collate, use_shared_memory=True)
        self.eval_loader = FailFastDataLoader(self.test_set, batch_sampler=eval_sampler,
                                              num_workers=nw, return_list=True,
                                              use_shared_memory=True)
        self.steps_per_epoch = len(self.train_sampler)

    def setup_model(self) -> None:
        """The student (the config's model, or the one given to ``fit``), the network a batch
        runs through (with the frozen teacher when distilling) and the weights' EMA."""
        if self.given_model is None:
            self.net = build_model(self.cfg, num_classes=self.num_classes)
        else:
            classes = getattr(self.given_model, "num_classes", self.num_classes)
            if classes != self.num_classes:
                raise ValueError(f"fit(model=...): the model has {classes} classes, the data "
                                 f"{self.num_classes}; build it with num_classes="
                                 f"{self.num_classes}")
            self.net = self.given_model
        self.network = self.net
        dist = self.cfg.get("distill") or {}
        if dist.get("teacher") and dist.get("type", "hard") != "none":
            if not isinstance(self.task, ClassificationTask):
                raise ValueError("distill.teacher: distillation is for classification; unset "
                                 f"it for the task {type(self.task).__name__}")
            self.network = DistillationNet(self.net, build_teacher(dist, self.num_classes))
        decay = self.cfg["train"].get("ema_decay")
        self.ema = ModelEma(self.net, float(decay)) if decay else None

    def setup_optimizer(self) -> None:
        """Loss, optimizer, schedules and AMP (:func:`~ppnets.engine.step.build_train_parts`),
        distillation's loss and the EMA: the parts of the step ``paddle.Model`` runs."""
        parts = build_train_parts(
            self.cfg, self.network, trainable_parameters(self.net), epochs=self.epochs,
            steps_per_epoch=self.steps_per_epoch, batch_size=int(self.cfg["data"]["batch_size"]),
            world_size=self.world_size, loss=self.task.loss(self.cfg),
            metrics=self.task.train_metrics())
        if self.network is not self.net:
            dist = self.cfg["distill"]
            parts.loss = DistillationLoss(parts.loss, self.network, dist["type"],
                                          float(dist["alpha"]), float(dist["tau"]))
        parts.ema = self.ema
        self.parts = parts
        self.optimizer, self.base_lr = parts.optimizer, float(parts.scheduler.base_lr)
        self.model = EngineModel(parts)

    def restore(self, pointer: dict) -> None:
        """Weights, EMA, optimizer (LR schedule included) and engine state of the checkpoint
        ``pointer`` names."""
        model_state, opt_state, state = load_checkpoint(self.ckpt_dir, pointer)
        self.net.set_state_dict(model_state)
        ema_state = opt_state.pop("ema_state", None)
        if self.ema is not None:
            if ema_state is None:
                raise ResumeMismatchError(f"{self.out}: the checkpoint holds no EMA state "
                                          "but train.ema_decay is set")
            self.ema.set_state_dict(ema_state)
        restore_optimizer_state(self.optimizer, self.net, opt_state)
        if self.parts.weight_decay is not None:
            self.parts.weight_decay.apply()   # the coefficient of the resumed iteration
        state.setdefault("unreadable_during_run", [])  # checkpoints of older versions
        self.state = state
        self.start_epoch = int(state["epoch"])
        self.resumed_from = int(pointer["epoch"])
        if self.main:
            print(f"[ppnets.engine] resuming {self.out} after epoch {self.resumed_from}/"
                  f"{self.epochs}")

    # ---- per epoch ---------------------------------------------------------------------
    def end_epoch(self, record: Dict[str, Any]) -> None:
        """After the training steps of an epoch: evaluate, record, log, checkpoint."""
        train = self.cfg["train"]
        done = record["epoch"]   # completed epochs, 1-based
        images = record.pop("images")
        last_of_call = done == self.end
        is_best = False
        if self.world_size > 1:
            self.adopt_rank0_statistics()
        if done % train["eval_freq"] == 0 or last_of_call:
            is_best = self.evaluate_into(record)
        st = self.state
        self.record_unreadable(done)
        st["epoch"] = done
        st["history"].append(record)
        st["train_time_s"] += record["train_time_s"]
        st["train_images"] += images
        st["wall_time_s"] = self.wall_before + (time.perf_counter() - self.call_t0)
        if train["verbose"] and self.main:
            print(epoch_line(record, self.epochs, self.task.labels), flush=True)
        if done % train["save_freq"] == 0 or last_of_call:
            self.save(done, is_best)

    def evaluate_into(self, record: Dict[str, Any]) -> bool:
        """The task's validation metrics (top-1/top-5 for classification; and of the EMA
        weights) into ``record``; True when the first metric is the best so far."""
        spread, metrics = self.world_size > 1, self.task.metrics
        res = self.task.evaluate(self.net, self.eval_loader, sum_over_ranks=spread)
        record.update({f"val_{m}": res[m] for m in metrics}, eval_time_s=res["time_s"])
        self.vdl.log_eval(record["epoch"] - 1, self.task.eval_scalars(res))
        if self.ema is not None:
            with self.ema.applied():
                res = self.task.evaluate(self.net, self.eval_loader, sum_over_ranks=spread)
            record.update({f"val_{m}_ema": res[m] for m in metrics})
        best = self.state[f"best_{metrics[0]}"]
        if best is not None and record[f"val_{metrics[0]}"] <= best:
            return False
        self.state.update({f"best_{m}": record[f"val_{m}"] for m in metrics},
                          best_epoch=record["epoch"])
        return True

    def adopt_rank0_statistics(self) -> None:
        """Parameters stay equal across ranks (DataParallel averages the gradients) but BN
        running statistics are per rank: adopt rank 0's everywhere (as torch DDP's
        broadcast_buffers does), so every rank evaluates the model rank 0 checkpoints. (Paddle
        keeps BN statistics as non-trainable parameters, not buffers.)"""
        for t in [p for p in self.net.parameters() if p.stop_gradient] + list(self.net.buffers()):
            paddle.distributed.broadcast(t, src=0)

    def save(self, done: int, is_best: bool) -> None:
        opt_state = portable_optimizer_state(self.optimizer, self.net)
        if self.ema is not None:
            opt_state["ema_state"] = self.ema.state_dict()
            if self.main:
                atomic_write(os.path.join(self.ckpt_dir, "ema.pdparams"),
                             lambda tmp: paddle.save(self.ema.state_dict(), tmp))
        save_checkpoint(self.ckpt_dir, done, self.net.state_dict(), opt_state, self.state,
                        is_best=is_best)
        prune_checkpoints(self.ckpt_dir, int(self.cfg["train"]["keep_checkpoints"] or 0))

    def record_unreadable(self, done: int) -> None:
        """Add the files that failed to decode this epoch (``skip`` replaced them; any rank,
        any loader worker) to the state; rank 0 names the new ones."""
        if self.cfg["data"]["on_bad_image"] != "skip":
            return
        found = [p for ds in (self.train_set, self.test_set) if isinstance(ds, ImageListDataset)
                 for p in ds.unreadable()]
        if self.world_size > 1:
            gathered: list = []
            paddle.distributed.all_gather_object(gathered, found)
            found = [p for part in gathered for p in part]
        known = set(self.state["unreadable_during_run"])
        new = sorted(set(found) - known)
        if new:
            self.state["unreadable_during_run"] = sorted(known | set(new))
            if self.main:
                print(f"[ppnets.engine] warning: epoch {done}: {len(new)} image(s) "
                      "failed to decode and a neighbouring sample stood in (data.on_bad_image="
                      "skip): " + ", ".join(new), file=sys.stderr, flush=True)

    # ---- driver ------------------------------------------------------------------------
    def run(self) -> dict:
        self.call_t0 = time.perf_counter()
        self.setup()
        self.wall_before = float(self.state.get("wall_time_s", 0.0))
        remaining = self.end - self.start_epoch
        if remaining > 0:
            self.vdl = OffsetVisualDL(os.path.join(self.out, "vdl"), self.start_epoch,
                                      self.steps_per_epoch)
            self.model.train_epochs(
                self.train_loader, remaining, self.end_epoch, start_epoch=self.start_epoch,
                callbacks=[_Reseed(self.seed, self.start_epoch), self.vdl],
                verbose=int(self.cfg["train"]["verbose"]) if self.main else 0,
                log_freq=int(self.cfg["train"]["log_freq"]), train_metric=self.task.train_metric)
        return self.results()

    def bad_images_record(self) -> Optional[dict]:
        """Unreadable image files: left out before the run, and replaced during it."""
        if self.screening is None:
            return None   # CIFAR-10: no image files
        during = list(self.state.get("unreadable_during_run", []))
        return {**self.screening.to_dict(), "unreadable_during_run": during,
                "unreadable_during_run_count": len(during)}

    def results(self) -> dict:
        st, metrics = self.state, self.task.metrics
        evaluated = [h for h in st["history"] if f"val_{metrics[0]}" in h]
        last = evaluated[-1] if evaluated else {}
        out = {
            "model": self.cfg["model"]["name"],
            "output_dir": os.path.abspath(self.out),
            "epochs_planned": self.epochs,
            "epochs_run": st["epoch"],
            "complete": st["epoch"] >= self.epochs,
            "resumed_from_epoch": self.resumed_from,
            **{f"final_{m}": last.get(f"val_{m}") for m in metrics},
            "final_epoch": last.get("epoch"),
            **{f"best_{m}": st[f"best_{m}"] for m in metrics},
            "best_epoch": st["best_epoch"],
            "train_images_per_s": (st["train_images"] / st["train_time_s"]
                                   if st["train_time_s"] > 0 else None),
            "train_time_s": st["train_time_s"], "wall_time_s": st["wall_time_s"],
            "num_train_images": len(self.train_set), "num_test_images": len(self.test_set),
            "steps_per_epoch": self.steps_per_epoch,
            "device": self.cfg["device"],
            "world_size": self.world_size,
            "global_batch_size": int(self.cfg["data"]["batch_size"]) * self.world_size,
            "base_lr": self.base_lr,
            "num_classes": self.num_classes,
            "history": copy.deepcopy(st["history"]),
            **{f"final_{m}_ema": last.get(f"val_{m}_ema") for m in metrics},
            "bad_images": self.bad_images_record(),
        }
        if is_rank0():
            atomic_write_json(os.path.join(self.out, "results.json"), out)
        return out


def fit(config: Union[str, Mapping], overrides=(), *, stop_after_epoch: Optional[int] = None,
        model: Optional[nn.Layer] = None, data: Optional[Sequence] = None,
        task: Optional[Task] = None) -> dict:
    """Train ``config`` (a path or a resolved dict) and return the results dict.

    ``model``: the network to train instead of building ``config``'s ``model`` section (e.g. a
    quantization-aware copy, :func:`ppnets.deploy.quant.qat_fit`); its classifier must fit the
    data's classes, and ``model.freeze``/``optim.layer_decay`` are not applied to it
    (:func:`build_model` does that for the config's model; :func:`ppnets.engine.freeze` and
    :func:`ppnets.engine.apply_layer_decay` do it for yours).

    ``data``: ``(train_set, val_set)``, map-style data sets of ``(input, label)`` samples used
    instead of the config's ``data`` section (whose loader settings still apply:
    ``batch_size``, ``eval_batch_size``, ``num_workers``); the class count is
    ``data.num_classes``, else the training set's ``num_classes`` (or ``len(classes)``).
    ``task``: what the network is trained for (:class:`~ppnets.engine.task.Task`: loss, running
    train metric, evaluation); default :class:`~ppnets.engine.task.ClassificationTask`. A
    task's metrics name the records and results: ``val_<metric>``, ``final_<metric>``,
    ``best_<metric>`` (top1/top5 for classification); its first metric picks the best checkpoint.

    ``stop_after_epoch`` ends this call after that (1-based) epoch without changing the plan:
    the schedule still spans ``train.epochs`` and the next call with the same ``output_dir``
    continues where this one stopped (useful for time-limited sessions).

    Returned (and written to ``<output_dir>/results.json``): ``final_top1``/``final_top5`` (last
    evaluation), ``best_top1``/``best_top5``/``best_epoch``, ``history`` (one record per epoch:
    lr, train loss and top-1, val top-1/top-5 when evaluated, timings), ``epochs_run``,
    ``epochs_planned``, ``complete``, ``wall_time_s``, ``train_time_s``, ``train_images_per_s``.
    """
    if isinstance(config, (str, os.PathLike)):
        cfg = load_config(str(config), overrides)
    else:
        if overrides:
            config = apply_overrides(config, overrides)
        cfg = load_config(None, base=config)
    return _Run(cfg, stop_after_epoch, model, data, task).run()
