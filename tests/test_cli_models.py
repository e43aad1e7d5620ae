"""The inspection commands, end to end in a subprocess."""
from __future__ import annotations

from resnet_cifar import list_models


def test_models_lists_every_model_with_its_parameter_count(run_cli) -> None:
    result = run_cli("models")
    assert result.returncode == 0, result.stderr
    table, patterns, shipped = result.stdout.split("\n\n")
    lines = {line.split()[0]: line for line in table.splitlines()[1:]}
    assert set(lines) == set(list_models())
    assert "11,173,962" in lines["resnet18"] and "269,722" in lines["resnet20"]
    assert "36,479,194" in lines["wrn-28-10"] and lines["resnext29-16x64d"].split()[1] == "68,155,210"
    assert "wrn-D-K" in patterns and "resnext29-CxDd" in patterns and "resnet9-wN" in patterns
    assert shipped.startswith("shipped weights") and "resnet20 (cifar10, " in shipped


def test_summary_of_a_wide_resnet_named_by_its_settings(run_cli) -> None:
    result = run_cli("summary", "wrn-16-4", "--depth", "2")
    assert result.returncode == 0, result.stderr
    assert "Total params: 2,748,890" in result.stdout and "layer3   1 x 256 x 8 x 8" in result.stdout


def test_summary_resnet18_shows_table_totals_macs_and_stage_shapes(run_cli) -> None:
    result = run_cli("summary", "resnet18")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Total params: 11,173,962" in out
    assert "Total mult-adds (M): 555.43" in out
    assert "Conv2d (conv1)" in out and "Linear (fc)" in out
    assert "layer4   1 x 512 x 4 x 4" in out and "stem     1 x 64 x 32 x 32" in out


def test_summary_options_change_the_head_and_the_shapes(run_cli) -> None:
    result = run_cli("summary", "resnet18", "--num-classes", "100", "--input-size", "3", "64", "64")
    assert result.returncode == 0, result.stderr
    assert "Total params: 11,220,132" in result.stdout  # 90 more classes x (512 weights + 1 bias)
    assert "layer4   1 x 512 x 8 x 8" in result.stdout


def test_unknown_model_is_one_line_without_traceback(run_cli) -> None:
    result = run_cli("summary", "resnet19")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "unknown model 'resnet19'" in result.stderr
