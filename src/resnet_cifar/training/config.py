"""The one configuration object of a training run: built from the command line, saved in every run folder."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from ..core.batches import TTA_MODES
from ..core.device import DEVICES
from ..data import DATASETS
from ..errors import ResnetCifarError, require_positive_int, require_seed
from ..models import model_options
from ..models.summary import count_parameters_of, require_input_size

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("onecycle", "cosine", "multistep", "plateau", "constant")
AMP_MODES = ("auto", "bf16", "fp16", "off")
# Where a run is kept and computed, not what it computes: a run may continue with them changed (train --resume).
PLACE_SETTINGS = ("out", "data_dir", "download", "device", "checkpoint_every")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")  # torch.compile's; reduce-overhead = CUDA graphs
FLIP_MODES = ("random", "alternate")
PAD_MODES = ("zeros", "reflect")


def setting(default: Any, help: str, *, shown: str | None = None, **cli: Any) -> Any:
    """A ``TrainConfig`` field that carries its own command-line help: the one place an option is described.

    ``shown`` replaces the default in the help text where the value alone would not explain it; ``cli`` holds
    extra argparse keywords (``choices``, ``metavar``); ``cli=False`` keeps the field off the command line.
    """
    value = {"default_factory": default} if callable(default) else {"default": default}
    return field(**value, metadata={"help": help, "shown": shown, **cli})


@dataclass
class TrainConfig:
    """Every setting of a training run. The defaults are a ResNet-18 recipe for CIFAR-10 on one GPU.

    Each field's metadata holds its ``--option`` help (``setting``); ``resnet-cifar train`` is built from it.
    """

    recipe: str = setting("default", "a named group of settings that the other options override")
    model: str = setting("resnet18", "model name from 'resnet-cifar models'")
    dataset: str = setting("cifar10", "dataset", choices=DATASETS)
    data_dir: str = setting("data", "folder holding the dataset")
    download: bool = setting(True, "fetch the official CIFAR archive when the folder is missing")
    out: str = setting("", "run folder", shown="runs/MODEL-DATASET-TIME")
    epochs: int = setting(30, "epochs")
    batch_size: int = setting(512, "training batch size; with torchrun, of all processes together. On a CPU "
                              "128 trains as many images/s as 512 and, at the same lr, better per epoch")
    optimizer: str = setting("sgd", "optimizer", choices=OPTIMIZERS)
    lr: float = setting(0.2, "peak learning rate")
    momentum: float = setting(0.9, "SGD momentum")
    weight_decay: float = setting(5e-4, "weight decay")
    decay_norm_and_bias: bool = setting(True, "apply weight decay to BatchNorm weights and to biases too; with "
                                        "--no-decay-norm-and-bias only conv and linear weights decay")
    nesterov: bool = setting(True, "Nesterov momentum for SGD")
    bias_lr_scale: float = setting(1.0, "the one-dimensional parameters (BatchNorm scales and biases, every bias) "
                                   "learn at --lr times this, their weight decay divided by it so that lr x decay "
                                   "stays (airbench: 64)")
    train_norm_scale: bool = setting(True, "learn the BatchNorm scales; with --no-train-norm-scale they stay at "
                                     "their initial 1 and only the biases learn (airbench)")
    schedule: str = setting("onecycle", "learning-rate schedule", choices=SCHEDULES)
    warmup_epochs: float | None = setting(None, "linear warm-up in epochs",
                                          shown="15% of the run for onecycle, else 0; not used by plateau")
    milestones: list[int] = setting(list, "epochs at which multistep multiplies the learning rate by --gamma")
    gamma: float = setting(0.1, "multistep/plateau factor")
    patience: int = setting(10, "plateau: epochs without improvement")
    # The relative fall that counts as better: torch's default.
    plateau_threshold: float = setting(1e-4, "plateau: the relative fall of the loss that counts as an improvement")
    label_smoothing: float = setting(0.1, "label smoothing of the training loss")
    augment: bool = setting(True, "random crop and horizontal flip")
    crop_padding: int = setting(4, "padding of the random crop")
    pad_mode: str = setting("zeros", "what fills the random crop's padding: zeros, or the border reflected "
                            "(airbench's translate)", choices=PAD_MODES)
    flip: str = setting("random", "horizontal flip: random for each image every epoch, or alternate: random in "
                        "the first epoch, then each image flipped in every other epoch (airbench)",
                        choices=FLIP_MODES)
    cutout: int = setting(0, "side of the cutout square, 0 = off")
    mixup: float = setting(0.0, "mixup: blend each batch with itself reversed, images and labels, by a weight drawn "
                           "from Beta(A, A) (0.2 is usual); 0 = off. The training accuracy then counts the label "
                           "with the most weight", metavar="A")
    cutmix: float = setting(0.0, "CutMix: paste a box of the reversed batch's images, of Beta(A, A) area share (1.0 "
                            "is usual), and blend the labels by area; 0 = off. With --mixup too, each batch takes "
                            "one of the two at even odds", metavar="A")
    val_split: int = setting(0, "hold out N training images (class-balanced) to choose best.pt; 0 = none, only "
                             "last.pt", metavar="N")
    train_subset: int = setting(0, "train on N of the training images (class-balanced, chosen by --seed) for quick "
                                "runs; 0 = all", metavar="N")
    amp: str = setting("auto", "mixed precision", choices=AMP_MODES,
                       shown="auto: bf16 on GPUs that have it natively, else fp16; bf16 on CPUs with native bf16 "
                             "(AVX-512 BF16, AMX), float32 on other CPUs")
    channels_last: bool | None = setting(None, "channels-last memory format",
                                         shown="on for CUDA GPUs, off on CPUs")
    compile: bool = setting(False, "torch.compile the model")
    compile_mode: str = setting("default", "with --compile: reduce-overhead replays CUDA graphs (fewer kernel "
                                "launches per step), max-autotune also searches for faster kernels (long "
                                "compilation)", choices=COMPILE_MODES)
    sync_bn: bool = setting(False, "with several processes (torchrun), BatchNorm statistics over the batches of "
                            "all of them")
    tta: str = setting("off", "after the last epoch also measure the test accuracy with this test-time "
                       "augmentation (test_tta_acc in metrics.csv; see 'resnet-cifar eval --tta')", choices=TTA_MODES)
    ema: bool = setting(False, "evaluate and export an exponential moving average of the weights")
    ema_decay: float = setting(0.999, "decay of the weights' moving average, reached after a warm-up: "
                               "min(decay, (1 + n) / (10 + n)) after n steps")
    seed: int = setting(0, "seed of initialisation, data order and augmentation")
    deterministic: bool = setting(False, "deterministic kernels only: bit-reproducible CPU runs; on CUDA turns off "
                                  "cuDNN autotuning (slower)")
    checkpoint_every: int = setting(0, "also save last.pt every N training steps, so a crash loses at most N steps",
                                    shown="0: at epoch ends only", metavar="N")
    skip_nonfinite: bool = setting(False, "skip batches whose loss is NaN/inf instead of stopping")
    device: str = setting("auto", "device", choices=DEVICES, shown="auto: cuda, then mps, then cpu")
    image_size: int = setting(32, "side images are resized to, --dataset folder only")
    init_from: str = setting("", "start from the weights of this model folder, run folder or .pt (fine-tuning, e.g. "
                             "of weights from 'resnet-cifar import'); a classifier for another number of classes "
                             "starts new", shown="none: random initialisation", metavar="DIR")
    model_options: dict[str, Any] = setting(dict, "the model builder's options (--stem, --shortcut, "
                                            "--zero-init-residual, --se, --dropout)", cli=False)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ResnetCifarError`` naming the first setting that cannot work."""
        unknown = sorted(set(self.model_options) - set(model_options(self.model)))  # also rejects unknown models
        if unknown:
            raise ResnetCifarError(f"{self.model} takes no option {', '.join(unknown)}")
        count_parameters_of(self.model, **self.model_options)  # bad option values: built on the meta device, no cost
        require_positive_int("epochs", self.epochs)
        require_positive_int("batch_size", self.batch_size)
        require_positive_int("image_size", self.image_size)
        if self.image_size != 32:  # every model takes CIFAR's side; the check costs a meta forward pass
            require_input_size(self.model, self.image_size, **self.model_options)
        _choice("dataset", self.dataset, DATASETS)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("schedule", self.schedule, SCHEDULES)
        _choice("amp", self.amp, AMP_MODES)
        _choice("device", self.device, DEVICES)
        _choice("compile_mode", self.compile_mode, COMPILE_MODES)
        _choice("flip", self.flip, FLIP_MODES)
        _choice("pad_mode", self.pad_mode, PAD_MODES)
        _choice("tta", self.tta, TTA_MODES)
        if not (math.isfinite(self.bias_lr_scale) and self.bias_lr_scale > 0):
            raise ResnetCifarError(f"--bias-lr-scale must be a positive number, got {self.bias_lr_scale}")
        if not self.train_norm_scale and self.model_options.get("zero_init_residual"):
            raise ResnetCifarError("--zero-init-residual starts BatchNorm scales at 0, which --no-train-norm-scale "
                                   "would keep there for good: use one of the two")
        if self.compile_mode != "default" and not self.compile:
            raise ResnetCifarError(f"--compile-mode {self.compile_mode} needs --compile")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ResnetCifarError(f"--lr must be a positive number, got {self.lr}")
        for name in ("momentum", "weight_decay", "label_smoothing", "ema_decay", "gamma", "plateau_threshold",
                     "mixup", "cutmix"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ResnetCifarError(f"--{name.replace('_', '-')} must be a number >= 0, got {value}")
        if self.label_smoothing >= 1 or self.ema_decay >= 1:
            raise ResnetCifarError("--label-smoothing and --ema-decay must be below 1")
        if self.warmup_epochs is not None and not 0 <= self.warmup_epochs < self.epochs:
            raise ResnetCifarError(f"--warmup-epochs must lie in [0, {self.epochs}), got {self.warmup_epochs}")
        if self.schedule == "multistep" and not self.milestones:
            raise ResnetCifarError("--schedule multistep needs --milestones, e.g. --milestones 15 25")
        if any(m <= 0 or m >= self.epochs for m in self.milestones) or self.milestones != sorted(self.milestones):
            raise ResnetCifarError(f"--milestones must increase and lie between 1 and {self.epochs - 1} (the epochs)")
        if self.schedule in ("multistep", "plateau") and not 0 < self.gamma < 1:
            raise ResnetCifarError(f"--gamma must lie in (0, 1) for --schedule {self.schedule}, got {self.gamma}")
        if self.channels_last not in (None, True, False):
            raise ResnetCifarError(f"channels_last must be true, false or null (auto), got {self.channels_last!r}")
        for name in ("val_split", "train_subset", "crop_padding", "cutout", "patience", "checkpoint_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ResnetCifarError(f"--{name.replace('_', '-')} must be an integer >= 0, got {value!r}")
        for name in ("crop_padding", "cutout"):  # beyond the image side they only cost memory (a padded copy)
            if getattr(self, name) > self.image_size:
                raise ResnetCifarError(f"--{name.replace('_', '-')} must be at most the image side "
                                       f"({self.image_size}), got {getattr(self, name)}")
        if self.pad_mode == "reflect" and self.crop_padding >= self.image_size:
            raise ResnetCifarError(f"--pad-mode reflect needs --crop-padding below the image side ({self.image_size})"
                                   f", got {self.crop_padding}")
        require_seed(self.seed)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy of every setting."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Rebuild a config saved by ``to_dict``; settings this version does not know are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ResnetCifarError(f"the saved config has settings this version does not know: {', '.join(unknown)}")
        return cls(**values)


def _choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ResnetCifarError(f"unknown {name} {value!r}: choose one of {', '.join(choices)}")
