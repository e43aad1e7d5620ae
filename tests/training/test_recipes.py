"""Named recipes and how explicit options override them."""
from __future__ import annotations

import csv
import json

import pytest
import torch
from safetensors.torch import load_file

from resnet_cifar import ResnetCifarError
from resnet_cifar.cli import build_parser
from resnet_cifar.cli.train import config_from_args
from resnet_cifar.training.config import TrainConfig
from resnet_cifar.training.recipes import RECIPES, recipe_config


def _config(*argv: str):
    return config_from_args(build_parser().parse_args(["train", *argv]))


def test_default_recipe_is_the_config_defaults() -> None:
    assert _config() == recipe_config() and _config().recipe == "default"


def test_recipe_settings_apply_and_explicit_options_override_them() -> None:
    config = _config("--recipe", "seeds-adam", "--epochs", "3", "--batch-size", "32")
    assert (config.optimizer, config.lr, config.augment, config.weight_decay) == ("adam", 1e-3, False, 0.0)
    assert (config.epochs, config.batch_size, config.recipe) == (3, 32, "seeds-adam")


def test_seeds_sgd_recipe_has_the_seed_posts_plateau() -> None:
    """ReduceLROnPlateau(threshold=0.1, patience=3), factor 0.1, and the flip alone, as seed 002 writes them."""
    config = _config("--recipe", "seeds-sgd")
    assert (config.schedule, config.patience, config.plateau_threshold, config.gamma) == ("plateau", 3, 0.1, 0.1)
    assert config.augment and config.crop_padding == 0
    assert _config("--recipe", "seeds-sgd", "--plateau-threshold", "0.01").plateau_threshold == 0.01


def test_an_option_given_with_its_default_value_still_overrides_the_recipe() -> None:
    assert _config("--recipe", "seeds-sgd", "--schedule", "onecycle").schedule == "onecycle"
    assert _config("--recipe", "seeds-adam", "--augment").augment is True


def test_a_recipes_switches_can_be_turned_off() -> None:
    fast = _config("--recipe", "fast")
    assert not fast.compile and fast.channels_last  # compiling did not pay on an H100 (BENCHMARKS.md)
    plain = _config("--recipe", "fast", "--compile", "--no-channels-last")
    assert plain.compile and not plain.channels_last and plain.epochs == fast.epochs


def test_compile_mode_needs_compile() -> None:
    assert _config("--compile", "--compile-mode", "reduce-overhead").compile_mode == "reduce-overhead"
    with pytest.raises(ResnetCifarError, match="--compile-mode reduce-overhead needs --compile"):
        _config("--compile-mode", "reduce-overhead")


def test_paper_recipe_follows_section_4_2() -> None:
    config = recipe_config("paper")
    steps_per_epoch = (50_000 - config.val_split) // config.batch_size
    assert config.model == "resnet20" and config.weight_decay == 1e-4 and config.momentum == 0.9
    assert [round(m * steps_per_epoch, -3) for m in config.milestones] == [32_000, 48_000]
    assert round(config.epochs * steps_per_epoch, -3) == 64_000


def test_recipe_milestones_move_with_the_number_of_epochs() -> None:
    assert recipe_config("paper", epochs=20).milestones == [10, 15]
    assert _config("--recipe", "paper", "--epochs", "40", "--milestones", "5", "30").milestones == [5, 30]
    one = recipe_config("paper", epochs=1)
    assert one.milestones == [] and one.schedule == "constant"


@pytest.mark.parametrize("name", list(RECIPES))
def test_every_recipe_changes_exactly_its_own_settings(name: str) -> None:
    config, defaults = recipe_config(name).to_dict(), TrainConfig().to_dict()
    settings = RECIPES[name][1]
    assert {key: config[key] for key in settings} == settings
    assert {key for key in config if config[key] != defaults[key]} - {"recipe"} == \
        {key for key in settings if settings[key] != defaults[key]}
    assert config["recipe"] == name


def test_unknown_recipe() -> None:
    with pytest.raises(ResnetCifarError, match="unknown recipe 'slow'"):
        recipe_config("slow")


def test_recipe_is_recorded_in_the_run_folder(run_cli, tmp_path) -> None:
    result = run_cli("train", "--recipe", "seeds-adam", "--model", "resnet20", "--dataset", "cifar10-sample", "--epochs", "1",
                     "--device", "cpu", "--quiet", "--out", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["recipe"] == "seeds-adam" and config["optimizer"] == "adam" and config["epochs"] == 1


def test_speedrun_recipe_trains_resnet9_with_fixed_norm_scales_and_airbench_tta(run_cli, tmp_path) -> None:
    result = run_cli("train", "--recipe", "speedrun", "--dataset", "cifar10-sample", "--epochs", "1", "--train-subset",
                     "256", "--device", "cpu", "--quiet", "--out", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (config["model"], config["flip"], config["pad_mode"]) == ("resnet9-w32", "alternate", "reflect")
    with open(tmp_path / "run" / "metrics.csv") as f:
        last = list(csv.DictReader(f))[-1]
    assert 0 <= float(last["test_tta_acc"]) <= 1  # airbench's flip-translate TTA, measured after the last epoch
    weights = load_file(tmp_path / "run" / "model.safetensors")
    scales = [tensor for name, tensor in weights.items() if ".bn" in name and name.endswith(".weight")]
    biases = [tensor for name, tensor in weights.items() if ".bn" in name and name.endswith(".bias")]
    assert scales and all(torch.equal(scale, torch.ones_like(scale)) for scale in scales)  # fixed at 1
    assert biases and any(bias.abs().max() > 0 for bias in biases)  # learnt (at 64x the learning rate)
