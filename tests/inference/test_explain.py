"""Maps of what a model looked at: Grad-CAM against captum's, no in-place ReLU trap, finite maps, hooks removed,
every zoo model, the command line and its bad inputs."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from resnet_cifar import ResnetCifarError, create_model, list_models
from resnet_cifar.inference.explain import default_layer, explain, feature_sizes, target_classes
from resnet_cifar.inference.explain_report import explain_inputs
from resnet_cifar.inference.pretrained import load_pretrained

EXAMPLES = Path(__file__).resolve().parents[2] / "src/resnet_cifar/data/assets/examples"


@pytest.fixture(scope="module")
def shipped():
    return load_pretrained("resnet20")


@pytest.fixture(scope="module")
def images(shipped) -> torch.Tensor:
    from resnet_cifar.inference.predict import load_input

    pixels = torch.stack([load_input(str(path), (32, 32)) for path in sorted(EXAMPLES.iterdir())])
    return shipped.normalised(pixels)


@pytest.mark.parametrize("layer", ["layer2", "layer3"])
def test_gradcam_equals_captums_layer_gradcam(shipped, images, layer) -> None:
    captum = pytest.importorskip("captum.attr", reason="captum is not installed (the explain extra)")
    ours = explain(shipped.model, images, layer=layer, top_k=1)
    module = shipped.model.get_submodule(layer)
    with torch.enable_grad():
        theirs = captum.LayerGradCam(shipped.model, module).attribute(images, target=ours.classes[:, 0],
                                                                      relu_attributions=True)[:, 0]
    torch.testing.assert_close(ours.layer_maps[:, 0], theirs.detach(), rtol=1e-4, atol=1e-6)


def test_maps_are_the_same_with_in_place_relus_or_without(shipped, images) -> None:
    before = explain(shipped.model, images, method="gradcam++", top_k=2)
    copy = load_pretrained("resnet20").model
    for module in copy.modules():
        if isinstance(module, nn.ReLU):
            module.inplace = False
    after = explain(copy, images, method="gradcam++", top_k=2)
    torch.testing.assert_close(before.maps, after.maps)
    assert torch.equal(before.classes, after.classes)


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "saliency"])
def test_a_constant_image_gives_a_finite_map_and_the_model_is_left_as_it_was(shipped, method) -> None:
    model = shipped.model
    constant = torch.zeros(2, 3, 32, 32)
    state = {key: value.clone() for key, value in model.state_dict().items()}
    with torch.no_grad():
        outputs = model(constant)
    explanation = explain(model, constant, method=method, top_k=3)
    assert explanation.maps.shape == (2, 3, 32, 32) and torch.isfinite(explanation.maps).all()
    assert explanation.maps.min() >= 0 and explanation.maps.max() <= 1
    assert all(not m._forward_hooks and not m._backward_hooks for m in model.modules())
    assert all(p.grad is None for p in model.parameters()) and not model.training
    assert all(torch.equal(value, state[key]) for key, value in model.state_dict().items())
    with torch.no_grad():
        assert torch.equal(model(constant), outputs)


def test_each_map_peaks_at_one_and_explains_the_classes_asked_for(shipped, images) -> None:
    explanation = explain(shipped.model, images, targets=torch.tensor([[8], [8], [8]]))
    assert explanation.classes.tolist() == [[8]] * 3
    assert torch.allclose(explanation.maps.flatten(2).amax(2), torch.ones(3, 1))
    top = explain(shipped.model, images, top_k=2)
    with torch.no_grad():
        expected = shipped.model(images).topk(2, dim=1).indices
    assert torch.equal(top.classes, expected) and (top.probabilities[:, 0] >= top.probabilities[:, 1]).all()


def test_integrated_gradients_come_from_captum(shipped, images) -> None:
    pytest.importorskip("captum.attr", reason="captum is not installed (the explain extra)")
    explanation = explain(shipped.model, images[:1], method="integrated-gradients")
    assert explanation.maps.shape == (1, 1, 32, 32) and explanation.maps.max() == 1


def test_the_default_layer_is_the_deepest_at_least_8x8() -> None:
    assert default_layer(create_model("resnet18"), (3, 32, 32)) == "layer3"  # layer4 is 4x4
    assert default_layer(create_model("resnet20"), (3, 32, 32)) == "layer3"  # its last stage, 8x8
    assert feature_sizes(create_model("resnet18"), (3, 32, 32))["layer4"] == (4, 4)
    assert default_layer(create_model("resnet18"), (3, 64, 64)) == "layer4"


DEEPEST = ("resnet101", "resnet110", "plain110", "resnet152", "resnet1202", "plain1202", "preact-resnet101",
           "preact-resnet152", "preact-resnet1001", "wrn-28-10", "resnext29-8x64d", "resnext29-16x64d")  # test-all
EVERY_MODEL = [pytest.param(name, marks=pytest.mark.slow) if name in DEEPEST else name for name in list_models()]


@pytest.mark.parametrize("name", EVERY_MODEL)
def test_every_model_of_the_zoo_is_explained(name) -> None:
    torch.manual_seed(0)
    model = create_model(name).eval()
    explanation = explain(model, torch.randn(2, 3, 32, 32), top_k=2)
    assert explanation.maps.shape == (2, 2, 32, 32) and torch.isfinite(explanation.maps).all()
    assert explanation.layer == default_layer(model, (3, 32, 32))


def test_bad_requests_are_one_line_errors(shipped, images) -> None:
    with pytest.raises(ResnetCifarError, match=r"no layer 'layer4' in this model: choose one of stem, layer1, layer2, "
                                               r"layer3"):
        explain(shipped.model, images, layer="layer4")
    with pytest.raises(ResnetCifarError, match="unknown method 'cam'"):
        explain(shipped.model, images, method="cam")
    with pytest.raises(ResnetCifarError, match="--layer applies to gradcam and gradcam\\+\\+"):
        explain(shipped.model, images, method="saliency", layer="layer3")
    with pytest.raises(ResnetCifarError, match="--top-k must lie in 1..10"):
        explain(shipped.model, images, top_k=11)
    with pytest.raises(ResnetCifarError, match="--target 'zebra' is not a class of this model"):
        target_classes("zebra", shipped.class_names, 1)
    assert target_classes("ship", shipped.class_names, 2).tolist() == [[8], [8]]
    assert target_classes("3", shipped.class_names, 1).tolist() == [[3]]


def test_an_exported_file_is_refused_in_one_line(shipped, tmp_path) -> None:
    from resnet_cifar import export

    export(shipped, "pt2", tmp_path / "model.pt2")
    with pytest.raises(ResnetCifarError, match="explanations need a PyTorch model"):
        explain_inputs(tmp_path / "model.pt2", [str(EXAMPLES)], out_dir=tmp_path / "out")


def test_explain_writes_a_figure_per_image_and_the_numbers(tmp_path) -> None:
    report = explain_inputs(_shipped_source(), [str(EXAMPLES)], top_k=2, out_dir=tmp_path, feature_maps=True,
                            filters=True)
    written = json.loads((tmp_path / "explain.json").read_text())
    assert [Path(image["input"]).stem for image in written["images"]] == ["cat", "horse", "ship"]
    assert written["layer"] == "layer3" and report["method"] == "gradcam"
    for image in written["images"]:
        assert Path(image["figure"]).is_file() and len(image["classes"]) == 2
        heat = torch.tensor(image["classes"][0]["map"])
        assert heat.shape == (32, 32) and heat.max() == 1
    assert [image["classes"][0]["class"] for image in written["images"]] == ["cat", "horse", "ship"]
    assert (tmp_path / "feature-maps.png").is_file() and (tmp_path / "filters.png").is_file()


def test_the_command_line_lists_layers_and_explains(run_cli, tmp_path) -> None:
    listed = run_cli("explain", "--pretrained", "resnet20", "--layer", "list")
    assert listed.returncode == 0 and "layer3     8x8" in listed.stdout, listed.stderr
    done = run_cli("explain", "--pretrained", "resnet20", str(EXAMPLES / "cat.png"), "--method", "saliency",
                   cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "cat.png: cat" in done.stdout and (tmp_path / "explain-resnet20" / "cat.png").is_file()
    wrong = run_cli("explain", "--pretrained", "resnet20", str(EXAMPLES / "cat.png"), "--layer", "layer9")
    assert wrong.returncode != 0 and "choose one of stem, layer1, layer2, layer3" in wrong.stderr
    assert len(wrong.stderr.strip().splitlines()) == 1


def _shipped_source():
    from resnet_cifar.core.source import resolve_source

    return resolve_source(None, "resnet20")




def test_predict_explain_draws_each_answer_and_names_it(shipped, tmp_path) -> None:
    from resnet_cifar import predict

    answers = predict(shipped, [str(EXAMPLES)], top_k=2, explain_dir=tmp_path / "maps")
    assert [Path(a["explanation"]).name for a in answers] == ["cat.png", "horse.png", "ship.png"]
    assert all(Path(a["explanation"]).is_file() for a in answers)
    assert "explanation" not in predict(shipped, [str(EXAMPLES / "cat.png")])[0]


def test_eval_explain_draws_the_grids_with_maps_and_refuses_an_exported_file(shipped, tmp_path) -> None:
    from resnet_cifar import evaluate, export

    results = evaluate(shipped, dataset="cifar10-sample", out_dir=tmp_path / "eval", device="cpu", explain=True)
    for name in ("predictions", "mistakes"):
        assert (tmp_path / "eval" / f"{name}-cam.png").is_file() and (tmp_path / "eval" / f"{name}.png").is_file()
    assert results["accuracy"] == evaluate(shipped, dataset="cifar10-sample", out_dir=tmp_path / "plain",
                                           device="cpu")["accuracy"]
    assert not (tmp_path / "plain" / "mistakes-cam.png").exists()
    export(shipped, "pt2", tmp_path / "model.pt2")
    with pytest.raises(ResnetCifarError, match="--explain needs the PyTorch model"):
        evaluate(tmp_path / "model.pt2", dataset="cifar10-sample", out_dir=tmp_path / "x", explain=True)


def test_overlaid_keeps_the_image_where_the_map_is_cold_and_colours_it_where_hot() -> None:
    from resnet_cifar.plots import overlaid

    images = torch.full((1, 3, 4, 4), 200, dtype=torch.uint8)
    maps = torch.zeros(1, 4, 4)
    maps[0, 0, 0] = 1.0
    blended = overlaid(images, maps)
    assert blended.dtype == torch.uint8 and blended.shape == images.shape
    hot, cold = blended[0, :, 0, 0].tolist(), blended[0, :, 3, 3].tolist()
    assert hot[0] > hot[2] and cold[2] > cold[0]  # jet: red where 1, blue where 0


def _rank_correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman's rank correlation of each pair of maps (N, H, W)."""
    ra, rb = (m.flatten(1).argsort(1).argsort(1).float() for m in (a, b))
    ra, rb = ra - ra.mean(1, keepdim=True), rb - rb.mean(1, keepdim=True)
    return (ra * rb).sum(1) / (ra.norm(dim=1) * rb.norm(dim=1))


def test_maps_depend_on_the_learned_weights(shipped) -> None:
    """Adebayo et al. 2018's sanity check: with the weights randomised layer by layer from the top, the maps must
    change (measured here: mean rank correlation 0.39 with fc random, about 0 once layer3 is too)."""
    from resnet_cifar.data import load_dataset

    images = shipped.normalised(load_dataset("cifar10-sample", "test").spread(32))
    reference = explain(shipped.model, images)
    again = explain(load_pretrained("resnet20").model, images, targets=reference.classes)
    assert _rank_correlation(reference.maps[:, 0], again.maps[:, 0]).mean() > 0.99
    model = load_pretrained("resnet20").model
    torch.manual_seed(0)
    bounds = {"fc": 0.6, "layer3": 0.2, "layer2": 0.2}
    for name, bound in bounds.items():
        for module in model.get_submodule(name).modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
        randomised = explain(model, images, targets=reference.classes)
        assert _rank_correlation(reference.maps[:, 0], randomised.maps[:, 0]).mean() < bound, name


def test_a_grid_variant_keeps_the_titles_and_changes_only_the_pictures(tmp_path) -> None:
    from PIL import Image

    from resnet_cifar.plots import GRID_HEADING, GRID_TITLE, plot_image_grid

    images = torch.zeros(3, 3, 32, 32, dtype=torch.uint8)
    plot_image_grid(images, ["cat (cat)", "dog (cat)", "ship (ship)"], [True, False, True], tmp_path / "plain.png",
                    heading="plain", variants=[(images + 255, tmp_path / "cam.png", "with maps")])
    plain, cam = (np.asarray(Image.open(tmp_path / name).convert("RGB")).astype(int) for name in ("plain.png",
                                                                                                 "cam.png"))
    assert plain.shape == cam.shape
    titles = slice(GRID_HEADING, GRID_HEADING + GRID_TITLE)
    assert (plain[titles] == cam[titles]).all()  # the same titles, drawn once
    title_colours = plain[titles].reshape(-1, 3)
    assert ((title_colours[:, 1] > title_colours[:, 0] + 60)).any()  # green: right
    assert ((title_colours[:, 0] > title_colours[:, 1] + 60)).any()  # red: wrong
    pictures = slice(GRID_HEADING + GRID_TITLE, None)
    assert plain[pictures].min() == 0 and (cam[pictures] != plain[pictures]).any()
    assert (plain[:GRID_HEADING] != cam[:GRID_HEADING]).any()  # each its own heading


def test_explain_in_batches_gives_the_maps_of_one_pass(monkeypatch, tmp_path) -> None:
    from resnet_cifar.inference import explain_report

    inputs = [str(path) for path in sorted(EXAMPLES.iterdir())] * 2
    whole = explain_inputs(_shipped_source(), inputs, top_k=2, out_dir=tmp_path / "whole")
    monkeypatch.setattr(explain_report, "EXPLAIN_BATCH", 4)  # 6 images: a full batch, then a short one
    batched = explain_inputs(_shipped_source(), inputs, top_k=2, out_dir=tmp_path / "batched")
    assert "map" not in batched["images"][0]["classes"][0]  # the returned report leaves the maps in the file
    for one, other in zip(batched["images"], whole["images"]):
        assert [c["class"] for c in one["classes"]] == [c["class"] for c in other["classes"]]
        assert [c["probability"] for c in one["classes"]] == pytest.approx([c["probability"] for c in other["classes"]],
                                                                            abs=1e-5)
    first = json.loads((tmp_path / "whole" / "explain.json").read_text())["images"]
    second = json.loads((tmp_path / "batched" / "explain.json").read_text())["images"]
    for one, other in zip(first, second):
        torch.testing.assert_close(torch.tensor(one["classes"][0]["map"]), torch.tensor(other["classes"][0]["map"]),
                                   atol=1e-4, rtol=0)


def test_every_input_gets_its_own_figure_and_none_takes_another_figures_name(shipped, tmp_path) -> None:
    from resnet_cifar import predict

    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "cat.png").write_bytes((EXAMPLES / "cat.png").read_bytes())
    (tmp_path / "a" / "cat-3.png").write_bytes((EXAMPLES / "horse.png").read_bytes())
    (tmp_path / "a" / "feature-maps.png").write_bytes((EXAMPLES / "ship.png").read_bytes())
    inputs = [str(tmp_path / name) for name in ("a/cat.png", "a/cat-3.png", "b/cat.png", "a/feature-maps.png")]
    report = explain_inputs(_shipped_source(), inputs, out_dir=tmp_path / "out", feature_maps=True)
    figures = [image["figure"] for image in report["images"]]
    assert len(set(figures)) == 4 and all(Path(figure).is_file() for figure in figures)
    assert str(tmp_path / "out" / "feature-maps.png") not in figures
    assert [c["class"] for image in report["images"] for c in image["classes"]] == ["cat", "horse", "cat", "ship"]
    answers = predict(shipped, inputs, explain_dir=tmp_path / "predicted")
    assert len({answer["explanation"] for answer in answers}) == 4


@pytest.mark.parametrize("run_file", ["model.json", "config.json", "metrics.csv"])
def test_figures_never_go_over_a_runs_files_or_the_inputs(shipped, tmp_path, run_file) -> None:
    from resnet_cifar import predict

    run = tmp_path / "run"
    run.mkdir()
    (run / run_file).write_text("{}")
    (run / "curves.png").write_bytes(b"the run's own curves")
    named_curves = tmp_path / "curves.png"
    named_curves.write_bytes((EXAMPLES / "cat.png").read_bytes())
    with pytest.raises(ResnetCifarError, match=r"holds a run or model .*give the figures a folder of their own"):
        explain_inputs(_shipped_source(), [str(named_curves)], out_dir=run)
    with pytest.raises(ResnetCifarError, match="holds a run or model"):
        predict(shipped, [str(named_curves)], explain_dir=run)
    assert (run / "curves.png").read_bytes() == b"the run's own curves" and not (run / "explain.json").exists()
    with pytest.raises(ResnetCifarError, match="would be written over the input"):
        explain_inputs(_shipped_source(), [str(named_curves)], out_dir=tmp_path)


def test_an_empty_layer_name_is_refused_like_any_unknown_one(shipped, images) -> None:
    with pytest.raises(ResnetCifarError, match="no layer '' in this model: choose one of stem, layer1"):
        explain(shipped.model, images, layer="")
    with pytest.raises(ResnetCifarError, match="no layer ''"):
        explain_inputs(_shipped_source(), [str(EXAMPLES / "cat.png")], layer="", out_dir=Path("unused"))


def test_a_stopped_explain_leaves_an_index_of_what_it_finished_and_no_temporary_file(tmp_path) -> None:
    import signal
    import subprocess
    import sys
    import time

    many = tmp_path / "many"
    many.mkdir()
    for number in range(400):
        (many / f"cat{number:03d}.png").write_bytes((EXAMPLES / "cat.png").read_bytes())
    out = tmp_path / "out"
    process = subprocess.Popen([sys.executable, "-m", "resnet_cifar", "explain", "--pretrained", "resnet20",
                                str(many), "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    deadline = time.monotonic() + 120
    while not (out / "cat000.png").exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    assert stderr.strip() == "resnet-cifar: interrupted"
    assert not [path for path in out.iterdir() if path.name.endswith(".tmp")]
    index = json.loads((out / "explain.json").read_text())
    finished = len(index["images"])
    assert index["stopped"] == f"after {finished} of 400 images" and 1 <= finished < 400
    assert all(Path(image["figure"]).is_file() for image in index["images"])
