"""``fit(config)``: train and evaluate a registry model on CIFAR-10 or ImageNet with
``paddle.Model``, on one device or data-parallel under ``python -m paddle.distributed.launch``
(rank 0 alone logs and writes files; see docs/training.md, "Distributed training").

The loop itself is ``paddle.Model(net).prepare(optimizer, loss, Accuracy(topk=(1, 5))).fit(...)``;
this module adds what a reproduction needs around it:

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
* image files checked before the first step (:func:`~ppnets.engine.datacheck.screen_datasets`,
  cached in ``checkpoints/datacheck.json``): ``data.on_bad_image: error`` stops with the list of
  unreadable files, ``skip`` leaves them out; files that fail to decode later are replaced by a
  neighbour (``skip``) and recorded (``bad_images`` in the results), or stop the run with an error
  naming the file within seconds (``error``; :class:`~ppnets.engine.data.FailFastDataLoader`).
"""
from __future__ import annotations

import copy
import math
import os
import shutil
import sys
import time
import warnings
from typing import Any, Dict, Mapping, Optional, Union

import paddle
import paddle.nn as nn

import ppnets
from ppnets.utils import atomic_write, atomic_write_json, atomic_write_text, is_rank0

from .checkpoint import (load_checkpoint, portable_optimizer_state, prune_checkpoints, read_latest,
                         restore_optimizer_state, save_checkpoint)
from .config import _yaml_load, apply_overrides, config_differences, dump_config, load_config
from .data import (EpochBatchSampler, FailFastDataLoader, ImageListDataset, build_datasets,
                   build_train_collate, default_num_workers, seed_everything)
from .datacheck import screen_datasets
from .distill import DistillationLoss, DistillationNet, build_teacher
from .ema import EmaCallback, ModelEma
from .augment import SoftTargetCrossEntropy
from .finetune import apply_layer_decay, freeze, trainable_parameters
from .optim import build_optimizer, build_scheduler
from .wd_schedule import WeightDecaySchedule

__all__ = ["fit", "build_model", "ResumeMismatchError", "OffsetVisualDL"]

# paddle.Model.train_batch/eval_batch pass the loader's label tensors through paddle.to_tensor,
# which warns once per process to use clone().detach(): Paddle's own call, nothing to change here.
warnings.filterwarnings("ignore", message="To copy construct from a tensor",
                        category=UserWarning, module=r"paddle\.tensor\.creation")


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


class _EngineCallback(paddle.callbacks.Callback):
    """Epoch offset, reseeding, timing, evaluation, checkpointing and history."""

    def __init__(self, engine: "_Run"):
        super().__init__()
        self.run = engine

    def on_epoch_begin(self, epoch=None, logs=None):
        r = self.run
        r.epoch = r.start_epoch + epoch
        seed_everything(r.seed + r.epoch)
        r.train_sampler.set_epoch(r.epoch)
        r.epoch_images, r.epoch_loss_sum, r.last_train_top1 = 0, 0.0, None
        r.epoch_lr = float(r.optimizer.get_lr())
        r.epoch_t0 = time.perf_counter()

    def on_train_batch_end(self, step, logs=None):
        logs = logs or {}
        n = int(logs.get("batch_size", 0)) * self.run.world_size  # every rank ran such a batch
        loss = logs.get("loss")
        if isinstance(loss, (list, tuple)):
            loss = loss[0]
        self.run.epoch_images += n
        if loss is not None:
            self.run.epoch_loss_sum += float(loss) * n
        self.run.last_train_top1 = logs.get("acc_top1")

    def on_epoch_end(self, epoch=None, logs=None):
        self.run.end_epoch(logs or {})


class _Run:
    """State of one ``fit`` call."""

    def __init__(self, cfg: dict, stop_after_epoch: Optional[int]):
        self.cfg = cfg
        self.out = cfg["output_dir"]
        self.ckpt_dir = os.path.join(self.out, "checkpoints")
        train = cfg["train"]
        self.seed = int(train["seed"])
        self.epochs = int(train["epochs"])
        self.end = self.epochs if stop_after_epoch is None else min(self.epochs,
                                                                    int(stop_after_epoch))
        self.state: Dict[str, Any] = {"epoch": 0, "best_top1": None, "best_top5": None,
                                      "best_epoch": None, "history": [], "train_time_s": 0.0,
                                      "train_images": 0, "wall_time_s": 0.0}
        self.resumed_from: Optional[int] = None
        self.world_size = paddle.distributed.get_world_size()
        self.main = is_rank0()

    # ---- setup -------------------------------------------------------------------------
    def prepare_output_dir(self) -> Optional[dict]:
        pointer = read_latest(self.ckpt_dir) if os.path.isdir(self.ckpt_dir) else None
        if pointer is None:
            return None
        if self.cfg["train"]["resume"]:
            saved_path = os.path.join(self.ckpt_dir, "config.yaml")
            if os.path.isfile(saved_path):
                with open(saved_path, "r", encoding="utf-8") as f:
                    saved = _yaml_load(f)
                diffs = config_differences(saved, self.cfg)
                if diffs:
                    raise ResumeMismatchError(
                        f"{self.out} holds a run (epoch {pointer['epoch']}) trained with a "
                        "different config:\n  " + "\n  ".join(diffs) +
                        "\nUse a new output_dir, or set train.resume=false (--no-resume) to "
                        "start over (the old run is moved aside, not deleted).")
            return pointer
        # Explicit restart: keep the previous run, moved aside, never overwritten.
        if is_rank0():
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
        return None

    def setup(self) -> None:
        cfg = self.cfg
        data, train = cfg["data"], cfg["train"]
        device = cfg["device"]
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
        self.train_set, self.test_set, self.num_classes = build_datasets(cfg)
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
        self.net = build_model(cfg, num_classes=self.num_classes)
        # Training batches are sharded across ranks by EpochBatchSampler (it reads the world
        # size and rank); evaluation batches too, and paddle.Model gathers the outputs of all
        # ranks and drops the padding, so every rank computes the metrics of the whole set.
        self.train_sampler = EpochBatchSampler(
            len(self.train_set), data["batch_size"], shuffle=True, seed=self.seed,
            max_batches=train["max_steps_per_epoch"])
        eval_bs = data["eval_batch_size"] or data["batch_size"]
        eval_sampler = EpochBatchSampler(len(self.test_set), eval_bs, shuffle=False,
                                         max_batches=train["max_eval_steps"])
        nw = data["num_workers"]
        nw = default_num_workers() if nw is None else int(nw)
        collate = build_train_collate(cfg, self.num_classes)
        self.train_loader = FailFastDataLoader(self.train_set, batch_sampler=self.train_sampler,
                                               num_workers=nw, return_list=True,
                                               collate_fn=collate, use_shared_memory=True)
        self.eval_loader = FailFastDataLoader(self.test_set, batch_sampler=eval_sampler,
                                              num_workers=nw, return_list=True,
                                              use_shared_memory=True)
        self.steps_per_epoch = len(self.train_sampler)

        self.base_lr = float(cfg["optim"]["lr"])
        scale_batch = cfg["optim"].get("lr_scale_batch")
        if scale_batch:
            # linear scaling rule (Goyal et al. 2017): lr is given for a global batch of
            # lr_scale_batch images
            self.base_lr *= data["batch_size"] * self.world_size / float(scale_batch)
        self.scheduler = build_scheduler(cfg["sched"], self.base_lr, self.epochs,
                                         self.steps_per_epoch)
        self.optimizer = build_optimizer(cfg["optim"], trainable_parameters(self.net),
                                         self.scheduler)
        ls = float(train["label_smoothing"] or 0.0)
        if collate is not None:
            loss = SoftTargetCrossEntropy(label_smoothing=ls)  # smoothing is in the targets
        else:
            loss = nn.CrossEntropyLoss(label_smoothing=ls) if ls > 0 else nn.CrossEntropyLoss()
        amp = None
        if train["amp"]:
            if device == "gpu":
                amp = "O1"
            else:
                warnings.warn("train.amp=true ignored: mixed precision needs device=gpu")
        # Optional features, each in its own module: weight-decay annealing, distillation, EMA.
        self.extra_callbacks = []
        if cfg["optim"].get("weight_decay_end") is not None:
            self.extra_callbacks.append(WeightDecaySchedule(
                self.optimizer, self.scheduler, float(cfg["optim"]["weight_decay"]),
                float(cfg["optim"]["weight_decay_end"]), self.epochs * self.steps_per_epoch))
        network = self.net
        dist = cfg.get("distill") or {}
        if dist.get("teacher") and dist.get("type", "hard") != "none":
            network = DistillationNet(self.net, build_teacher(dist, self.num_classes))
            loss = DistillationLoss(loss, network, dist["type"], float(dist["alpha"]),
                                    float(dist["tau"]))
        self.ema = None
        if train.get("ema_decay"):
            self.ema = ModelEma(self.net, float(train["ema_decay"]))
            self.extra_callbacks.append(EmaCallback(self.ema))
        self.model = paddle.Model(network)
        self.model.prepare(self.optimizer, loss, paddle.metric.Accuracy(topk=(1, 5)),
                           amp_configs=amp)

        if pointer is not None:
            model_state, opt_state, state = load_checkpoint(self.ckpt_dir, pointer)
            self.net.set_state_dict(model_state)
            ema_state = opt_state.pop("ema_state", None)
            if self.ema is not None:
                if ema_state is None:
                    raise ResumeMismatchError(f"{self.out}: the checkpoint holds no EMA state "
                                              "but train.ema_decay is set")
                self.ema.set_state_dict(ema_state)
            restore_optimizer_state(self.optimizer, self.net, opt_state)
            self.state = state
            self.resumed_from = int(pointer["epoch"])
            if self.main:
                print(f"[ppnets.engine] resuming {self.out} after epoch {self.resumed_from}/"
                      f"{self.epochs}")
        self.state.setdefault("unreadable_during_run", [])  # checkpoints of older versions
        self.start_epoch = int(self.state["epoch"])
        if is_rank0():
            atomic_write_text(os.path.join(self.ckpt_dir, "config.yaml"), dump_config(cfg))

    # ---- per epoch ---------------------------------------------------------------------
    def end_epoch(self, logs: Mapping) -> None:
        train = self.cfg["train"]
        train_time = time.perf_counter() - self.epoch_t0
        done = self.epoch + 1  # completed epochs, 1-based
        record = {"epoch": done, "lr": self.epoch_lr,
                  "train_loss": self.epoch_loss_sum / max(1, self.epoch_images),
                  "train_top1": _scalar(self.last_train_top1),
                  "train_time_s": train_time,
                  "images_per_s": self.epoch_images / train_time if train_time > 0 else None}
        last_of_call = done == self.end
        is_best = False
        if self.world_size > 1:
            # Parameters stay equal across ranks (DataParallel averages the gradients) but BN
            # running statistics are per rank: adopt rank 0's everywhere (as torch DDP's
            # broadcast_buffers does), so every rank evaluates the model rank 0 checkpoints.
            # (Paddle keeps BN statistics as non-trainable parameters, not buffers.)
            for t in [p for p in self.net.parameters() if p.stop_gradient] + \
                    list(self.net.buffers()):
                paddle.distributed.broadcast(t, src=0)
        if done % train["eval_freq"] == 0 or last_of_call:
            t0 = time.perf_counter()
            res = self.model.evaluate(self.eval_loader, verbose=0)
            record.update(val_top1=_scalar(res["acc_top1"]), val_top5=_scalar(res["acc_top5"]),
                          eval_time_s=time.perf_counter() - t0)
            self.vdl.log_eval(self.epoch, {"acc_top1": record["val_top1"],
                                           "acc_top5": record["val_top5"]})
            if self.ema is not None:
                with self.ema.applied():
                    res = self.model.evaluate(self.eval_loader, verbose=0)
                record.update(val_top1_ema=_scalar(res["acc_top1"]),
                              val_top5_ema=_scalar(res["acc_top5"]))
            best = self.state["best_top1"]
            if best is None or record["val_top1"] > best:
                is_best = True
                self.state.update(best_top1=record["val_top1"], best_top5=record["val_top5"],
                                  best_epoch=done)
        st = self.state
        self.record_unreadable()
        st["epoch"] = done
        st["history"].append(record)
        st["train_time_s"] += train_time
        st["train_images"] += self.epoch_images
        st["wall_time_s"] = self.wall_before + (time.perf_counter() - self.call_t0)
        if train["verbose"] and self.main:
            val = (f" val top-1 {record['val_top1']:.4f} top-5 {record['val_top5']:.4f}"
                   if "val_top1" in record else "")
            print(f"[ppnets.engine] epoch {done}/{self.epochs} lr {record['lr']:.5g} "
                  f"loss {record['train_loss']:.4f}{val} "
                  f"({record['images_per_s'] or 0:.1f} img/s)", flush=True)
        if done % train["save_freq"] == 0 or last_of_call:
            opt_state = portable_optimizer_state(self.optimizer, self.net)
            if self.ema is not None:
                opt_state["ema_state"] = self.ema.state_dict()
                if self.main:
                    atomic_write(os.path.join(self.ckpt_dir, "ema.pdparams"),
                                 lambda tmp: paddle.save(self.ema.state_dict(), tmp))
            save_checkpoint(self.ckpt_dir, done, self.net.state_dict(), opt_state, st,
                            is_best=is_best)
            prune_checkpoints(self.ckpt_dir, int(train["keep_checkpoints"] or 0))

    def record_unreadable(self) -> None:
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
                print(f"[ppnets.engine] warning: epoch {self.epoch + 1}: {len(new)} image(s) "
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
            self.model.fit(self.train_loader, None, epochs=remaining,
                           log_freq=int(self.cfg["train"]["log_freq"]),
                           verbose=int(self.cfg["train"]["verbose"]) if self.main else 0,
                           callbacks=[_EngineCallback(self), self.vdl,
                                      *self.extra_callbacks])
        return self.results()

    def bad_images_record(self) -> Optional[dict]:
        """Unreadable image files: left out before the run, and replaced during it."""
        if self.screening is None:
            return None   # CIFAR-10: no image files
        during = list(self.state.get("unreadable_during_run", []))
        return {**self.screening.to_dict(), "unreadable_during_run": during,
                "unreadable_during_run_count": len(during)}

    def results(self) -> dict:
        st = self.state
        evaluated = [h for h in st["history"] if "val_top1" in h]
        last = evaluated[-1] if evaluated else {}
        out = {
            "model": self.cfg["model"]["name"],
            "output_dir": os.path.abspath(self.out),
            "epochs_planned": self.epochs,
            "epochs_run": st["epoch"],
            "complete": st["epoch"] >= self.epochs,
            "resumed_from_epoch": self.resumed_from,
            "final_top1": last.get("val_top1"), "final_top5": last.get("val_top5"),
            "final_epoch": last.get("epoch"),
            "best_top1": st["best_top1"], "best_top5": st["best_top5"],
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
            "final_top1_ema": last.get("val_top1_ema"), "final_top5_ema": last.get("val_top5_ema"),
            "bad_images": self.bad_images_record(),
        }
        if is_rank0():
            atomic_write_json(os.path.join(self.out, "results.json"), out)
        return out


def _scalar(v):
    if v is None:
        return None
    if isinstance(v, (list, tuple)):
        v = v[0]
    v = float(v)
    return None if math.isnan(v) else v


def fit(config: Union[str, Mapping], overrides=(), *,
        stop_after_epoch: Optional[int] = None) -> dict:
    """Train ``config`` (a path or a resolved dict) and return the results dict.

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
    return _Run(cfg, stop_after_epoch).run()
