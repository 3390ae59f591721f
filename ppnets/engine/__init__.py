"""Training engine: configs, CIFAR-10 data, optimizers/schedules, resumable ``fit``.

    from ppnets.engine import load_config, fit
    cfg = load_config("configs/spconv/paper_resnet20.yaml", ["train.epochs=2"])
    results = fit(cfg)   # resumes automatically from cfg["output_dir"] when re-run

See docs/training.md for every config key.
"""
from .checkpoint import atomic_write, atomic_write_json, atomic_write_text, read_latest
from .config import DEFAULTS, ConfigError, apply_overrides, dump_config, load_config, merge_config
from .data import (CIFAR10_MEAN, CIFAR10_STD, DataUnavailableError, EpochBatchSampler,
                   build_cifar10, cifar10_transforms, count_cifar10_images, resolve_cifar10_file,
                   seed_everything)
from .fit import ResumeMismatchError, build_model, fit
from .optim import WarmupSchedule, build_optimizer, build_scheduler, lr_at

__all__ = [
    "DEFAULTS", "ConfigError", "apply_overrides", "dump_config", "load_config", "merge_config",
    "CIFAR10_MEAN", "CIFAR10_STD", "DataUnavailableError", "EpochBatchSampler", "build_cifar10",
    "cifar10_transforms", "count_cifar10_images", "resolve_cifar10_file", "seed_everything",
    "ResumeMismatchError", "build_model", "fit", "WarmupSchedule", "build_optimizer",
    "build_scheduler", "lr_at", "atomic_write", "atomic_write_json", "atomic_write_text",
    "read_latest",
]
