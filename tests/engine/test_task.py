"""The task hook of ``ppnets.engine.fit``: a dense task (segmentation) trains through the same
step with its own network and data sets, and gets what classification gets -- resumption that
equals an uninterrupted run, checkpoints (the best one chosen by the task's first metric),
results.json, VisualDL logs, frozen parameters. Classification, the default task, is covered
unchanged by test_engine.py and test_step.py."""
from __future__ import annotations

import glob
import json

import numpy as np
import paddle
import paddle.nn as nn
import pytest

from ppnets.engine import ClassificationTask, epoch_line, fit, freeze
from ppnets.examples.segmentation import SegmentationTask, ShapesDataset
from tests.conftest import checkpoint_weights


class TinyDenseNet(nn.Layer):
    """Test-only per-pixel classifier: conv-BN-ReLU, 1x1 conv to class logits."""

    def __init__(self, num_classes: int = 4, width: int = 8):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2D(3, width, 3, padding=1, bias_attr=False),
                                  nn.BatchNorm2D(width), nn.ReLU())
        self.body = nn.Sequential(nn.Conv2D(width, width, 3, padding=1), nn.ReLU())
        self.head = nn.Conv2D(width, num_classes, 1)
        self.num_classes = num_classes

    def forward(self, x):
        return self.head(self.body(self.stem(x)))


def _data():
    return ShapesDataset(12, image_size=16, seed=0), ShapesDataset(6, image_size=16, seed=1)


def _net(frozen=("stem",)):
    paddle.seed(5)
    net = TinyDenseNet()
    freeze(net, list(frozen))
    return net


def _config(out, **train):
    return {"model": {"name": "tiny_dense"},   # names the run; the given net is trained
            "data": {"batch_size": 4, "num_workers": 0, "eval_batch_size": 3},
            "optim": {"name": "adamw", "lr": 3e-3, "weight_decay": 1e-4},
            "sched": {"name": "cosine", "warmup_epochs": 0.5},
            "train": {"epochs": 2, "seed": 11, "verbose": 0, **train},
            "output_dir": str(out)}


def _scalars(out, tag):
    from visualdl import LogReader

    (path,) = glob.glob(str(out / "vdl" / "vdlrecords.*.log"))
    return [(r.id, r.value) for r in LogReader(file_path=path).get_data("scalar", tag)]


def test_a_dense_task_trains_resumes_and_records_like_classification(tmp_path):
    task = SegmentationTask(4)
    net_full = _net()
    stem_before = {k: v.numpy().copy() for k, v in net_full.stem.state_dict().items()}
    head_before = net_full.head.weight.numpy().copy()
    full = fit(_config(tmp_path / "full"), model=net_full, data=_data(), task=task)

    cfg = _config(tmp_path / "split")
    first = fit(cfg, stop_after_epoch=1, model=_net(), data=_data(), task=SegmentationTask(4))
    assert first["epochs_run"] == 1 and not first["complete"]
    second = fit(cfg, model=_net(), data=_data(), task=SegmentationTask(4))
    assert second["resumed_from_epoch"] == 1 and second["complete"]

    a = checkpoint_weights(str(tmp_path / "full" / "checkpoints" / "epoch_0002.pdparams"))
    b = checkpoint_weights(str(tmp_path / "split" / "checkpoints" / "epoch_0002.pdparams"))
    for k in a:   # bitwise: the same batches and optimizer state after the restart
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert full["final_miou"] == second["final_miou"]

    # the task's metrics name the records and results; classification's are absent
    for h in full["history"]:
        assert {"val_miou", "val_pixel_acc", "val_class_iou", "train_pixel_acc"} <= set(h)
        assert "val_top1" not in h and "train_top1" not in h
    assert 0.0 <= full["final_miou"] <= 1.0 and len(full["final_class_iou"]) == 4
    assert full["best_miou"] == max(h["val_miou"] for h in full["history"])
    assert "final_top1" not in full and full["num_classes"] == 4
    assert json.loads((tmp_path / "full" / "results.json").read_text()) == full
    assert (tmp_path / "full" / "checkpoints" / "best.pdparams").is_file()
    assert [e for e, _ in _scalars(tmp_path / "full", "eval/miou")] == [0, 1]
    assert _scalars(tmp_path / "full", "train/pixel_acc")

    # frozen parameters (and their BatchNorm statistics) stay; the rest trains
    for k, v in net_full.stem.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), stem_before[k], err_msg=k)
    assert not np.array_equal(net_full.head.weight.numpy(), head_before)


class ScriptedTask(SegmentationTask):
    """Segmentation whose evaluation reports a scripted score, to see what picks the best."""

    metrics = ("score", "miou")
    labels = {"score": "score"}

    def __init__(self, scores):
        super().__init__(4)
        self.scores = list(scores)

    def evaluate(self, network, batches, *, sum_over_ranks=False):
        result = super().evaluate(network, batches, sum_over_ranks=sum_over_ranks)
        return {**result, "score": self.scores.pop(0)}


def test_the_tasks_first_metric_picks_the_best_checkpoint(tmp_path):
    out = tmp_path / "run"
    res = fit(_config(out, epochs=3, keep_checkpoints=0), model=_net(), data=_data(),
              task=ScriptedTask([0.2, 0.9, 0.5]))
    assert res["best_epoch"] == 2 and res["best_score"] == 0.9 and res["final_score"] == 0.5
    assert res["best_miou"] == res["history"][1]["val_miou"]
    best = checkpoint_weights(str(out / "checkpoints" / "best.pdparams"))
    epoch2 = checkpoint_weights(str(out / "checkpoints" / "epoch_0002.pdparams"))
    epoch3 = checkpoint_weights(str(out / "checkpoints" / "epoch_0003.pdparams"))
    assert all(np.array_equal(best[k], epoch2[k]) for k in best)
    assert any(not np.array_equal(best[k], epoch3[k]) for k in best)
    assert [v for _, v in _scalars(out, "eval/score")] == pytest.approx([0.2, 0.9, 0.5])


def test_epoch_line_shows_the_tasks_metrics_and_classifications_as_before():
    record = {"epoch": 3, "lr": 0.05, "train_loss": 1.23456, "images_per_s": 812.34,
              "val_top1": 0.5, "val_top5": 0.75}
    assert epoch_line(record, 10) == ("[ppnets.engine] epoch 3/10 lr 0.05 loss 1.2346 val top-1 "
                                      "0.5000 top-5 0.7500 (812.3 img/s)")
    dense = {**record, "val_miou": 0.61, "val_pixel_acc": 0.9}
    assert epoch_line(dense, 10, SegmentationTask.labels).endswith(
        "val mIoU 0.6100 pixel acc 0.9000 (812.3 img/s)")
    assert epoch_line({**record, "val_top1": None}, 10) == (
        "[ppnets.engine] epoch 3/10 lr 0.05 loss 1.2346 val top-5 0.7500 (812.3 img/s)")


def test_given_data_and_task_are_checked_and_distillation_stays_classification(tmp_path):
    class Unlabelled(paddle.io.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return np.zeros((3, 16, 16), np.float32), np.zeros((16, 16), np.int64)

    with pytest.raises(ValueError, match="set data.num_classes"):
        fit(_config(tmp_path / "a"), model=_net(), data=(Unlabelled(), Unlabelled()),
            task=SegmentationTask(4))
    with pytest.raises(ValueError, match=r"takes \(train_set, val_set\)"):
        fit(_config(tmp_path / "b"), model=_net(), data=_data()[0], task=SegmentationTask(4))
    with pytest.raises(ValueError, match="takes a Task instance"):
        fit(_config(tmp_path / "d"), model=_net(), data=_data(), task=SegmentationTask)
    cfg = {**_config(tmp_path / "c"), "distill": {"teacher": "resnet18"}}
    with pytest.raises(ValueError, match="distillation is for classification"):
        fit(cfg, model=_net(), data=_data(), task=SegmentationTask(4))
    assert ClassificationTask().eval_scalars({"top1": 0.5, "top5": 0.9}) == {
        "acc_top1": 0.5, "acc_top5": 0.9}
