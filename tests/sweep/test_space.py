"""The sweep's search space: what a file may say, and the one-line errors for what it may not."""
from __future__ import annotations

import json

import pytest

from resnet_cifar.errors import ResnetCifarError
from resnet_cifar.sweep.space import Dimension, parse_space, read_space

optuna = pytest.importorskip("optuna", reason="the sweep needs the sweep extra")


def test_a_yaml_space_gives_typed_dimensions(tmp_path) -> None:
    path = tmp_path / "space.yaml"
    path.write_text("lr: {low: 0.01, high: 1.0, log: true}\nepochs: {low: 2, high: 8, step: 2}\n"
                    "batch_size: {choices: [64, 128]}\nnesterov: {choices: [true, false]}\n"
                    "warmup_epochs: {low: 0, high: 2}\n")
    lr, epochs, batch, nesterov, warmup = read_space(path)
    assert lr == Dimension("lr", float, 0.01, 1.0, log=True)
    assert epochs.kind is int and epochs.step == 2 and batch.choices == (64, 128) and nesterov.choices == (True, False)
    assert warmup.kind is float  # float | None: a sweep samples a number
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        trial = study.ask()
        values = {d.name: d.sample(trial) for d in (lr, epochs, batch, nesterov, warmup)}
        assert 0.01 <= values["lr"] <= 1.0 and values["epochs"] in (2, 4, 6, 8) and values["batch_size"] in (64, 128)
        assert isinstance(values["epochs"], int) and isinstance(values["nesterov"], bool)
        study.tell(trial, 0.5)


def test_a_json_space_reads_alike(tmp_path) -> None:
    path = tmp_path / "space.json"
    path.write_text(json.dumps({"weight_decay": {"low": 1e-5, "high": 1e-3, "log": True}}))
    assert read_space(path) == [Dimension("weight_decay", float, 1e-5, 1e-3, log=True)]


BAD_SPACES = [
    ({"lrr": {"low": 0.1, "high": 1}}, "unknown setting 'lrr': choose from"),
    ({"out": {"choices": ["a", "b"]}}, "out cannot vary in a sweep"),
    ({"val_split": {"low": 100, "high": 200}}, "val_split cannot vary in a sweep"),
    ({"lr": {"low": 1.0, "high": 0.1}}, "lr: low must be below high, got 1.0 and 0.1"),
    ({"lr": {"low": 0.0, "high": 1.0, "log": True}}, "lr: a log scale needs low above 0"),
    ({"lr": {"low": 0.1}}, "lr needs low and high"),
    ({"lr": {"low": 0.1, "high": 1, "scale": "log"}}, "lr needs low and high (and may have log, step), or choices"),
    ({"lr": {"low": "a", "high": 1}}, "lr: low must be a number, got 'a'"),
    ({"lr": {"low": 0.1, "high": 1, "log": "yes"}}, "lr: log must be true or false"),
    ({"epochs": {"low": 1.5, "high": 4}}, "epochs is an integer setting: low must be a whole number"),
    ({"epochs": {"low": 1, "high": 4, "step": 5}}, "epochs: step must be above 0 and at most high - low"),
    ({"lr": {"low": 0.01, "high": 1, "log": True, "step": 0.1}}, "lr: a log scale takes no step"),
    ({"optimizer": {"low": 1, "high": 2}}, "optimizer is not a number: give choices"),
    ({"batch_size": {"choices": []}}, "batch_size: choices must be a non-empty list"),
    ({"batch_size": {"choices": [64, "128"]}}, "batch_size: the choice '128' is not an integer"),
    ({"nesterov": {"choices": [True, 1]}}, "nesterov: the choice 1 is not true or false"),
    ({"batch_size": {"choices": [64, 64]}}, "batch_size: a choice is listed twice"),
    ({"batch_size": {"choices": [64], "low": 1}}, "batch_size: choices take no other keys"),
    ({"milestones": {"choices": [1, 2]}}, "milestones cannot be swept"),
    ({"lr": 0.1}, "lr must be {low: .., high: ..} or {choices: [..]}, got 0.1"),
    ([], "must map settings to ranges"),
    ({}, "must map settings to ranges"),
]


@pytest.mark.parametrize("entries,fragment", BAD_SPACES, ids=[fragment for _, fragment in BAD_SPACES])
def test_bad_spaces_are_one_line_errors(entries, fragment: str) -> None:
    with pytest.raises(ResnetCifarError) as info:
        parse_space(entries, "space.yaml")
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_unreadable_and_unsafe_files_are_refused(tmp_path) -> None:
    with pytest.raises(ResnetCifarError, match="cannot read the search space"):
        read_space(tmp_path / "missing.yaml")
    unsafe = tmp_path / "unsafe.yaml"
    unsafe.write_text("lr: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(ResnetCifarError, match="is not valid YAML"):
        read_space(unsafe)
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(ResnetCifarError, match="is not valid JSON"):
        read_space(broken)
    huge = tmp_path / "huge.yaml"
    huge.write_bytes(b"#" * (2 << 20))
    with pytest.raises(ResnetCifarError, match="larger than a search space can be"):
        read_space(huge)


def test_yaml_reads_exponents_without_a_dot_as_numbers(tmp_path) -> None:
    path = tmp_path / "space.yaml"
    path.write_text("lr: {low: 1e-3, high: 1E-1, log: true}\nweight_decay: {low: 5e-5, high: 1.0e-3}\n"
                    "optimizer: {choices: ['1e-3', sgd]}\n")  # quoted: still a name
    lr, decay, optimizer = read_space(path)
    assert (lr.low, lr.high, decay.low) == (1e-3, 1e-1, 5e-5) and optimizer.choices == ("1e-3", "sgd")


@pytest.mark.parametrize("name,text", [("space.yaml", "lr: {low: 0.1, high: 1}\nlr: {low: 0.2, high: 2}\n"),
                                       ("space.yaml", "lr: {low: 0.1, high: 1, low: 0.5}\n"),
                                       ("space.json", '{"lr": {"low": 0.1, "high": 1, "high": 3}}')])
def test_a_key_given_twice_is_refused(tmp_path, name, text) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ResnetCifarError, match=r"gives '(lr|low|high)' twice.*keep one"):
        read_space(path)
