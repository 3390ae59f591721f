"""Training engine: configs, CIFAR-10 and ImageNet data, Mixup/CutMix, optimizers/schedules,
resumable (and data-parallel) ``fit``.

    from ppnets.engine import load_config, fit
    cfg = load_config("configs/spconv/paper_resnet20.yaml", ["train.epochs=2"])
    results = fit(cfg)   # resumes automatically from cfg["output_dir"] when re-run

See docs/training.md for every config key.
"""
from .checkpoint import atomic_write, atomic_write_json, atomic_write_text, read_latest
from .config import DEFAULTS, ConfigError, apply_overrides, dump_config, load_config, merge_config
from .data import (CIFAR10_MEAN, CIFAR10_STD, DataUnavailableError, EpochBatchSampler,
                   build_cifar10, build_datasets, build_train_collate, cifar10_transforms,
                   count_cifar10_images, default_num_workers, resolve_cifar10_file,
                   seed_everything)
from .imagenet import (IMAGENET_MEAN, IMAGENET_STD, AutoAugment, ImageListDataset, RandAugment,
                       build_imagenet, eval_transform, model_eval_transform, train_transform)
from .mix import MixupCutmixCollate, SoftTargetCrossEntropy
from .fit import ResumeMismatchError, build_model, fit
from .optim import RMSPropTF, WarmupSchedule, build_optimizer, build_scheduler, lr_at

__all__ = [
    "DEFAULTS", "ConfigError", "apply_overrides", "dump_config", "load_config", "merge_config",
    "CIFAR10_MEAN", "CIFAR10_STD", "DataUnavailableError", "EpochBatchSampler", "build_cifar10",
    "cifar10_transforms", "count_cifar10_images", "resolve_cifar10_file", "seed_everything",
    "build_datasets", "build_train_collate", "default_num_workers", "IMAGENET_MEAN",
    "IMAGENET_STD", "ImageListDataset", "RandAugment", "AutoAugment", "RMSPropTF",
    "build_imagenet", "eval_transform",
    "model_eval_transform", "train_transform", "MixupCutmixCollate", "SoftTargetCrossEntropy",
    "ResumeMismatchError", "build_model", "fit", "WarmupSchedule", "build_optimizer",
    "build_scheduler", "lr_at", "atomic_write", "atomic_write_json", "atomic_write_text",
    "read_latest",
]
