"""BatchNorm folding keeps the outputs and removes every BatchNorm."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from resnet_cifar import create_model
from resnet_cifar.models.fold import fold_batchnorm


@pytest.mark.parametrize("name,options", [("resnet20", {}), ("resnet20", {"shortcut": "B"}), ("resnet50", {}),
                                          ("plain20", {}), ("resnet18", {"stem": "imagenet"})])
def test_folded_model_matches_and_has_no_batchnorm(name: str, options: dict) -> None:
    model = create_model(name, **options)
    model.train()
    with torch.no_grad():  # give the BatchNorms non-trivial running statistics and affine parameters
        for _ in range(3):
            model(torch.randn(8, 3, 64, 64))
        for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.2, 0.2)
    model.eval()
    folded = fold_batchnorm(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())  # the original is untouched
    x = torch.randn(4, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(folded(x), model(x), atol=1e-4, rtol=1e-4)
