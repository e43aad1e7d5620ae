"""Accuracy under corruptions: the cache of corrupted sets (kept, checked, rebuilt when tampered), the report's
errors relative to a reference on a hand-worked case, and ``eval --corruptions`` end to end."""
from __future__ import annotations

import hashlib
import json

import pytest

from resnet_cifar import ResnetCifarError, create_model
from resnet_cifar.cli import main
from resnet_cifar.data import corrupted as cache
from resnet_cifar.data import load_dataset
from resnet_cifar.inference.pretrained import load_pretrained
from resnet_cifar.inference.robustness import parse_severities, robustness_report
from resnet_cifar.inference.trained import TrainedModel

pytest.importorskip("scipy", reason="the corruptions need the corruptions extra (SciPy)")


@pytest.fixture(scope="module")
def clean():
    return load_dataset("cifar10-sample", "test").spread(60)


def test_a_corrupted_set_is_made_once_then_read_back_and_remade_when_tampered(clean, tmp_path, monkeypatch,
                                                                             capsys) -> None:
    first = cache.corrupted_set(clean, "fog", 3, data_dir=tmp_path, seed=1)
    assert first.images.shape == clean.images.shape and (first.labels == clean.labels).all()
    assert not (first.images == clean.images).all()
    folder = cache.cache_folder(tmp_path, clean, 1)
    stored = folder / "fog-3.u8"
    assert stored.stat().st_size == clean.images.numel()
    assert (folder / "fog-3.u8.sha256").read_text() == hashlib.sha256(stored.read_bytes()).hexdigest()

    def never(*args, **kwargs):
        raise AssertionError("made again although cached")

    with monkeypatch.context() as patched:
        patched.setattr(cache, "corrupt", never)
        assert (cache.corrupted_set(clean, "fog", 3, data_dir=tmp_path, seed=1).images == first.images).all()
    data = bytearray(stored.read_bytes())
    data[100] ^= 0xFF
    stored.write_bytes(bytes(data))
    again = cache.corrupted_set(clean, "fog", 3, data_dir=tmp_path, seed=1)
    assert "changed on disk" in capsys.readouterr().err and (again.images == first.images).all()
    stored.write_bytes(b"short")
    assert (cache.corrupted_set(clean, "fog", 3, data_dir=tmp_path, seed=1).images == first.images).all()
    assert "not the size" in capsys.readouterr().err
    (folder / "fog-3.u8.sha256").write_text("0" * 64)
    assert (cache.corrupted_set(clean, "fog", 3, data_dir=tmp_path, seed=1).images == first.images).all()
    other = cache.corrupted_set(clean, "fog", 3, data_dir=tmp_path, seed=2)
    assert cache.cache_folder(tmp_path, clean, 2) != folder and not (other.images == first.images).all()


def test_the_errors_relative_to_a_reference_on_a_case_worked_by_hand() -> None:
    report = robustness_report(0.9, {"fog": {1: 0.8, 5: 0.6}, "saturate": {1: 0.9, 5: 0.7}},
                               reference=(0.8, {"fog": {1: 0.6, 5: 0.4}, "saturate": {1: 0.8, 5: 0.8}}))
    assert report["mean_accuracy"]["fog"] == pytest.approx(0.7)
    assert report["averaged_over"] == ["fog"]  # saturate is one of the 4 extra corruptions, outside the mean
    assert report["mean_corruption_accuracy"] == pytest.approx(0.7)
    assert report["corruption_error"]["fog"] == pytest.approx((0.2 + 0.4) / (0.4 + 0.6))
    assert report["relative_corruption_error"]["fog"] == pytest.approx((0.1 + 0.3) / (0.2 + 0.4))
    assert report["relative_corruption_error"]["saturate"] is None  # the reference lost nothing to it
    assert report["mce"] == pytest.approx(0.6) and report["relative_mce"] == pytest.approx(2 / 3)


@pytest.mark.parametrize(("text", "expected"), [("1-5", [1, 2, 3, 4, 5]), ("3", [3]), ("5,1,3", [1, 3, 5])])
def test_severities_are_read_as_ranges_or_lists(text, expected) -> None:
    assert parse_severities(text) == expected


@pytest.mark.parametrize("text", ["0", "6", "2-7", "x", "1,,2", ""])
def test_severities_outside_1_to_5_are_refused(text) -> None:
    with pytest.raises(ResnetCifarError, match="give severities from 1 to 5"):
        parse_severities(text)


def test_eval_measures_corruptions_against_a_reference_and_draws_them(tmp_path) -> None:
    from resnet_cifar import evaluate

    shipped = load_pretrained("resnet20")
    results = evaluate(shipped, dataset="cifar10-sample", data_dir=tmp_path / "data", out_dir=tmp_path / "eval",
                       device="cpu", corruptions=["fog", "contrast"], severities=[1, 5], reference=shipped)
    report = results["corruptions"]
    assert set(report["accuracy"]) == {"fog", "contrast"} and set(report["accuracy"]["fog"]) == {"1", "5"}
    assert report["accuracy"]["contrast"]["5"] < report["accuracy"]["contrast"]["1"] <= results["accuracy"] + 0.02
    assert report["mce"] == pytest.approx(1.0) and report["relative_mce"] == pytest.approx(1.0)  # itself
    assert (tmp_path / "eval" / "robustness.png").is_file()
    assert json.loads((tmp_path / "eval" / "eval.json").read_text())["corruptions"]["mce"] == pytest.approx(1.0)
    assert list((tmp_path / "data" / "corrupted").iterdir())  # kept under the data folder
    reseeded = evaluate(shipped, dataset="cifar10-sample", data_dir=tmp_path / "data", out_dir=tmp_path / "seed",
                        device="cpu", corruptions=["fog"], severities=[5], corruption_seed=9)["corruptions"]
    assert reseeded["seed"] == 9 and report["seed"] == 0 and len(list((tmp_path / "data" / "corrupted").iterdir())) == 2


def test_a_reference_of_other_classes_and_bad_options_are_refused(tmp_path, capsys) -> None:
    from resnet_cifar import evaluate

    shipped = load_pretrained("resnet20")
    other = TrainedModel(create_model("resnet20", num_classes=100).eval(),
                         {**shipped.info, "num_classes": 100, "class_names": [f"c{i}" for i in range(100)]})
    with pytest.raises(ResnetCifarError, match="--reference takes 100 classes"):
        evaluate(shipped, dataset="cifar10-sample", data_dir=tmp_path, out_dir=tmp_path / "eval", device="cpu",
                 corruptions=["fog"], severities=[1], reference=other)
    for arguments, message in ((["--corruptions", "fogg"], "unknown corruption fogg: choose all or any of"),
                               (["--corruptions", "fog", "--severities", "0"], "give severities from 1 to 5"),
                               (["--corruptions", "fog", "--seed", "-5"], "--seed must be an integer from 0 to"),
                               (["--reference", "x"], "--reference compares corruption errors: give --corruptions")):
        assert main(["eval", "--pretrained", "resnet20", "--dataset", "cifar10-sample", "--data-dir", str(tmp_path),
                     "--out", str(tmp_path / "cli"), *arguments]) == 2
        assert message in capsys.readouterr().err


def test_processes_filling_the_cache_make_what_one_process_makes(clean, tmp_path) -> None:
    pairs = [("fog", 1), ("contrast", 5), ("glass_blur", 2)]
    made = list(cache.fill_cache(clean, pairs, data_dir=tmp_path / "pool", seed=1, workers=2))
    assert sorted(made) == sorted(pairs)
    assert list(cache.fill_cache(clean, pairs, data_dir=tmp_path / "pool", seed=1, workers=2)) == []  # all there
    for name, severity in pairs:
        pooled = cache.corrupted_set(clean, name, severity, data_dir=tmp_path / "pool", seed=1)
        alone = cache.corrupted_set(clean, name, severity, data_dir=tmp_path / "alone", seed=1)
        assert (pooled.images == alone.images).all()


def test_the_help_names_every_corruption(capsys) -> None:
    from resnet_cifar.data.corruptions import CORRUPTIONS

    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    listed = " ".join(capsys.readouterr().out.split())
    assert all(name in listed for name in CORRUPTIONS)
