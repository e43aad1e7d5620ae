"""Device choices that must be right on GPUs too, tested on the CPU with the CUDA queries stood in for."""
from __future__ import annotations

import pytest
import torch

from resnet_cifar.core import device as device_module
from resnet_cifar.core.checkpoint import cuda_rng_to_restore
from resnet_cifar.core.device import resolve_amp, resolve_channels_last

GPU0, GPU3 = torch.device("cuda", 0), torch.device("cuda", 3)


@pytest.mark.parametrize("capability, expected", [((7, 0), torch.float16), ((7, 5), torch.float16),
                                                  ((8, 0), torch.bfloat16), ((9, 0), torch.bfloat16)])
def test_auto_precision_is_bf16_only_where_the_gpu_has_it_natively(monkeypatch, capability, expected) -> None:
    asked = []
    monkeypatch.setattr(device_module.torch.cuda, "get_device_capability",
                        lambda device=None: asked.append(device) or capability)
    assert resolve_amp("auto", GPU3) is expected
    assert asked == [GPU3]  # our GPU is asked, not the current one (cuda:0 before set_device)


def test_channels_last_is_on_by_default_for_gpus_only() -> None:
    assert resolve_channels_last(None, GPU0) and not resolve_channels_last(None, torch.device("cpu"))
    assert resolve_channels_last(True, torch.device("cpu")) and not resolve_channels_last(False, GPU0)


def test_cuda_random_state_restores_on_a_machine_with_fewer_gpus() -> None:
    states = [torch.full((4,), i, dtype=torch.uint8) for i in range(8)]  # an 8-GPU machine's list (older checkpoints)
    assert torch.equal(cuda_rng_to_restore(states, GPU3), states[3])
    assert cuda_rng_to_restore(states[:2], GPU3) is None  # not saved for that GPU: left as it is
    assert cuda_rng_to_restore(states[5], GPU0) is states[5]  # now: the training GPU's state alone
    assert cuda_rng_to_restore(states[5], torch.device("cpu")) is None
    assert cuda_rng_to_restore(None, GPU0) is None


def test_hidden_cpu_flags_make_any_host_choose_as_an_avx2_only_one(monkeypatch) -> None:
    """`make test-avx2` hides native bf16 and VNNI: auto precision is then float32 on the CPU, int8 keeps 7 bits."""
    monkeypatch.delenv(device_module.HIDDEN_FLAGS_VARIABLE, raising=False)  # as make test-avx2 sets it
    monkeypatch.setattr(device_module, "_cpu_flags_listed", lambda: {"avx2", "avx512f", "avx512_bf16", "avx512_vnni"})
    assert device_module.cpu_supports_bf16() and device_module.cpu_has_vnni()
    monkeypatch.setenv(device_module.HIDDEN_FLAGS_VARIABLE, "avx512_bf16 amx_bf16 avx512_vnni avx_vnni amx_int8")
    assert not device_module.cpu_supports_bf16() and not device_module.cpu_has_vnni()
    assert resolve_amp("auto", torch.device("cpu")) is None
