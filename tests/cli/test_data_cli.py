"""``ppnets data check``, and the data errors of ``ppnets train`` / ``ppnets eval`` as a user meets
them: one clear ``error:`` message and exit status 2, never a traceback; Ctrl-C during training
says where the last checkpoint is (exit status 130)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
import yaml

from ppnets.cli.main import main
from tests.conftest import REPO, write_cifar_archive
from tests.engine.bad_images import make_zoo, rgb_image


def _run(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


# ---- ppnets data check ------------------------------------------------------------------------
def test_data_check_lists_every_file_and_exits_1(tmp_path, capsys):
    zoo = make_zoo(tmp_path / "zoo")
    root = str(tmp_path / "zoo")
    report = tmp_path / "reports" / "check.json"
    rc, out, err = _run(capsys, "data", "check", root, "--json", str(report))
    assert rc == 1, out + err
    for path in list(zoo["header_bad"]) + list(zoo["odd"]) + zoo["ignored"]:
        assert f"  {os.path.relpath(path, root)}: " in out, path
    assert "train: 20 images, 2 classes" in out and "val: 7 images, 2 classes" in out
    assert f"{len(zoo['header_bad'])} errors (cannot be used as they are):" in out
    assert "headers only" in out and "-o data.on_bad_image=skip" in out
    assert zoo["decode_bad"][0] not in out          # the pixel data is read with --decode only
    data = json.loads(report.read_text())
    assert data["layout"] == "split_folder" and data["command"].startswith("ppnets data check")
    assert sorted(i["path"] for i in data["issues"] if i["kind"] == "unreadable") == sorted(
        zoo["header_bad"])
    rc, out, _ = _run(capsys, "data", "check", root, "--decode")
    assert rc == 1 and all(f"  {os.path.relpath(p, root)}: cannot be decoded" in out
                           for p in zoo["decode_bad"])


def test_data_check_clean_data_exits_0_and_usage_errors_exit_2(tmp_path, capsys):
    for cls in ("a", "b"):
        (tmp_path / "ok" / cls).mkdir(parents=True)
        rgb_image(0).convert("L").save(tmp_path / "ok" / cls / "0.png")   # a note, not a problem
    rc, out, _ = _run(capsys, "data", "check", str(tmp_path / "ok"))
    assert rc == 0 and out.rstrip().endswith("OK: nothing to fix") and "grey value" in out
    archive = str(tmp_path / "cifar-10-python.tar.gz")
    write_cifar_archive(archive, per_batch=2, n_test=3)
    rc, out, _ = _run(capsys, "data", "check", archive)
    assert rc == 0 and "train: 10 images" in out and "a partial archive" in out
    rc, _, err = _run(capsys, "data", "check", str(tmp_path / "nowhere"))
    assert rc == 2 and err.startswith("error: ") and "does not exist" in err
    rc, _, err = _run(capsys, "data", "check", str(tmp_path / "ok"), "--root", str(tmp_path))
    assert rc == 2 and "--root is for list files" in err
    with pytest.raises(SystemExit) as info:
        main(["data", "check"])
    assert info.value.code == 2


# ---- ppnets eval / train data errors -----------------------------------------------------------
def test_eval_on_a_flat_folder_is_one_error_line(tmp_path, capsys):
    flat = tmp_path / "photos"
    flat.mkdir()
    for i in range(3):
        rgb_image(i).save(flat / f"IMG_{i}.jpg")
    (tmp_path / "w.pdparams").write_bytes(b"")      # the data are read before the weights
    rc, out, err = _run(capsys, "eval", "--model", "resnet20_cifar", "--pretrained",
                        str(tmp_path / "w.pdparams"), "--data-dir", str(flat))
    assert rc == 2 and out == ""
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert "no class sub-folders (it holds 3 image files directly)" in err
    assert "--list" in err and "<class>" in err


def test_empty_training_folder_names_the_training_split(tmp_path, capsys):
    (tmp_path / "train").mkdir()
    (tmp_path / "val" / "a").mkdir(parents=True)
    rc, _, err = _run(capsys, "train", "-c", os.path.join(REPO, "configs", "finetune",
                                                          "full.yaml"),
                      "-o", "model.name=resnet20_cifar", "-o", "model.pretrained=false",
                      "-o", f"data.train_dir={tmp_path / 'train'}",
                      "-o", f"data.val_dir={tmp_path / 'val'}",
                      "--output-dir", str(tmp_path / "run"))
    assert rc == 2 and err.startswith("error: "), err
    assert "training images" in err and "validation" not in err
    assert "(it is empty)" in err and "data.train_list" in err


def test_unreadable_images_stop_train_with_the_whole_list(tmp_path, capsys):
    zoo = make_zoo(tmp_path / "zoo", decode_bad=False)
    rc, out, err = _run(capsys, "train", "-c", os.path.join(REPO, "configs", "finetune",
                                                            "full.yaml"),
                        "-o", "model.name=resnet20_cifar", "-o", "model.pretrained=false",
                        "-o", f"data.train_dir={tmp_path / 'zoo' / 'train'}",
                        "-o", f"data.val_dir={tmp_path / 'zoo' / 'val'}",
                        "-o", "data.num_workers=0", "--output-dir", str(tmp_path / "run"))
    assert rc == 2 and "Traceback" not in err
    lines = err.splitlines()
    assert lines[0].startswith(f"error: {len(zoo['header_bad'])} of ")
    for path in zoo["header_bad"]:
        assert any(line.startswith(f"  {path}: ") for line in lines), path
    assert "data.on_bad_image=skip" in lines[-1]


# ---- Ctrl-C -------------------------------------------------------------------------------------
_PPNETS_WITH_TEST_MODELS = (
    "import sys; sys.path.insert(0, sys.argv.pop(1)); import tests.engine.tiny_train; "
    "from ppnets.cli.main import main; sys.exit(main(sys.argv[1:]))")


def test_ctrl_c_says_where_the_checkpoint_is_and_the_same_command_resumes(tmp_path):
    archive = str(tmp_path / "cifar-10-python.tar.gz")
    write_cifar_archive(archive, per_batch=16, n_test=8, seed=5)    # 80 images: 20 steps/epoch
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({
        "model": {"name": "test_tiny_sleepy", "kwargs": {"sleep_s": 0.05}},
        "data": {"data_file": archive, "batch_size": 4, "num_workers": 0},
        "train": {"epochs": 2, "verbose": 2, "log_freq": 1}}))
    cmd = [sys.executable, "-u", "-c", _PPNETS_WITH_TEST_MODELS, REPO, "train", "-c", str(cfg),
           "--output-dir", str(tmp_path / "run")]
    # As in a terminal: SIGINT at its default. A test run started in the background of a
    # non-interactive shell (`pytest ... &`) has SIGINT ignored, the child inherits that, Python
    # then installs no KeyboardInterrupt handler, and the run ignored the signal (rc 0, not 130).
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    in_epoch2 = sent = False
    try:
        for line in proc.stdout:
            if "[ppnets.engine] epoch 1/2" in line:
                in_epoch2 = True     # epoch 1 is checkpointed
            elif in_epoch2 and line.startswith("step"):
                proc.send_signal(signal.SIGINT)
                sent = True
                break
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert sent, err[-3000:]
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    message = [line for line in err.splitlines() if line.startswith("interrupted")]
    ckpt = tmp_path / "run" / "checkpoints"
    command = f"ppnets train -c {cfg} --output-dir {tmp_path / 'run'}"
    assert message == [f"interrupted: the last checkpoint is epoch 1/2 in {ckpt}; `{command}` "
                       "resumes from it"]
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming" in again.stdout and "after epoch 1/2" in again.stdout


def test_eval_lists_unreadable_images_or_skips_and_records_them(tmp_path, capsys):
    import paddle

    import ppnets

    zoo = make_zoo(tmp_path / "zoo", decode_bad=False)
    weights = str(tmp_path / "w.pdparams")
    paddle.save(ppnets.create_model("resnet20_cifar", num_classes=2).state_dict(), weights)
    args = ["eval", "--model", "resnet20_cifar", "--pretrained", weights, "--data-dir",
            str(tmp_path / "zoo"), "--num-classes", "2", "--input-size", "32",
            "--num-workers", "0"]
    rc, out, err = _run(capsys, *args)
    val_bad = [p for p in zoo["header_bad"] if f"{os.sep}val{os.sep}" in p]
    assert rc == 2 and out == "" and "Traceback" not in err
    assert err.startswith("error: 1 of 6 evaluation images cannot be read:")
    assert f"  {val_bad[0]}: not an image" in err and "--on-bad-image skip" in err
    rc, out, err = _run(capsys, *args, "--on-bad-image", "skip", "--json",
                        str(tmp_path / "eval.json"))
    assert rc == 0 and "on 5 images" in out and val_bad[0] in err
    record = json.loads((tmp_path / "eval.json").read_text())["bad_images"]
    assert [b["path"] for b in record["left_out"]] == val_bad and record["checked_images"] == 6


def test_the_text_report_caps_each_kind_and_points_to_the_json():
    from ppnets.cli.data import render
    from ppnets.engine.datacheck import DataCheckReport, Issue

    issues = [Issue("mode", "note", f"/d/a/{i}.jpg", "grey value copied to the three channels")
              for i in range(60)]
    issues.append(Issue("unreadable", "error", "/d/a/x.jpg", "empty file (0 bytes)"))
    text = render(DataCheckReport("/d", "class_folder", False, 61, 0.1, [], issues), per_kind=50)
    assert "a/49.jpg: grey value" in text and "a/50.jpg" not in text
    assert "... and 10 more of kind 'mode' (--json lists every file)" in text
    assert "a/x.jpg: empty file (0 bytes)" in text and "60 notes" in text
