"""Training engine: configs (:mod:`.config`), data I/O (:mod:`.data`), transforms
(:mod:`.transforms`), augmentations (:mod:`.augment`), optimizers/schedules (:mod:`.optim`),
the training step (:mod:`.step`), evaluation (:mod:`.evaluate`), what a run trains for
(:mod:`.task`: classification by default, or a dense task), resumable (and data-parallel)
``fit`` (:mod:`.fit`), fine-tuning controls (:mod:`.finetune`), checks of image data
(:mod:`.datacheck`).

    from ppnets.engine import load_config, fit
    cfg = load_config("spconv/paper_cifar10", ["train.epochs=2"])   # a recipe name or a file
    results = fit(cfg)   # resumes automatically from cfg["output_dir"] when re-run

See docs/training.md for every config key.
"""
from .augment import AutoAugment, MixupCutmixCollate, RandAugment, SoftTargetCrossEntropy
from .checkpoint import read_latest
from .config import DEFAULTS, ConfigError, apply_overrides, dump_config, load_config, merge_config
from .data import (BadImageError, DataUnavailableError, EpochBatchSampler, FailFastDataLoader,
                   ImageListDataset, build_cifar10, build_datasets, build_imagenet,
                   build_train_collate, count_cifar10_images, default_num_workers, load_image,
                   resolve_cifar10_file, seed_everything)
from .datacheck import DataCheckReport, check_data
from .evaluate import Evaluation, evaluate_network
from .finetune import apply_layer_decay, freeze, trainable_parameters
from .fit import ResumeMismatchError, build_model, fit
from .optim import RMSPropTF, WarmupSchedule, build_optimizer, build_scheduler, lr_at
from .step import (EngineModel, StepOutput, TrainParts, build_loss, build_train_parts, epoch_line,
                   train_step)
from .task import ClassificationTask, Task
from .transforms import (CIFAR10_MEAN, CIFAR10_STD, cifar10_transforms, eval_transform,
                         model_eval_transform, train_transform)

__all__ = [
    "DEFAULTS", "ConfigError", "apply_overrides", "dump_config", "load_config", "merge_config",
    "CIFAR10_MEAN", "CIFAR10_STD", "DataUnavailableError", "EpochBatchSampler", "build_cifar10",
    "cifar10_transforms", "count_cifar10_images", "resolve_cifar10_file", "seed_everything",
    "build_datasets", "build_train_collate", "default_num_workers", "ImageListDataset",
    "RandAugment", "AutoAugment", "RMSPropTF", "build_imagenet", "eval_transform",
    "model_eval_transform", "train_transform", "MixupCutmixCollate", "SoftTargetCrossEntropy",
    "ResumeMismatchError", "build_model", "fit", "WarmupSchedule", "build_optimizer",
    "build_scheduler", "lr_at", "read_latest", "BadImageError", "load_image",
    "FailFastDataLoader", "check_data", "DataCheckReport", "Evaluation", "evaluate_network",
    "EngineModel", "StepOutput", "TrainParts", "build_loss", "build_train_parts", "epoch_line",
    "train_step", "Task", "ClassificationTask", "freeze", "trainable_parameters",
    "apply_layer_decay",
]
