"""
Build a ResNet
==============

A residual network is a stack of *blocks*, each computing a small change to its input and adding the input
back (the shortcut). This tutorial builds the two blocks the ResNets use, puts them in a network, prints it,
summarises it layer by layer and follows one image's tensor through the stages.
"""

# %%
# The two blocks
# --------------
# ``BasicBlock`` (ResNet-18/34 and the paper's CIFAR nets) is two 3x3 convolutions; ``Bottleneck``
# (ResNet-50/101/152) reduces the channels with a 1x1 convolution, works at that width with a 3x3 one and expands
# them four times with another 1x1 (``expansion = 4``). Where the shape stays the same the shortcut is the
# identity; where it changes (more channels, half the resolution) it is a 1x1 convolution with BatchNorm.
import torch
from torch import nn

from resnet_cifar.models.blocks import BasicBlock, Bottleneck, make_shortcut

same = BasicBlock(64, 64, stride=1, shortcut=nn.Identity())
down = BasicBlock(64, 128, stride=2, shortcut=make_shortcut("B", 64, 128, stride=2))
print(down)

x = torch.randn(1, 64, 32, 32)
print("identity block:", tuple(same(x).shape), " downsampling block:", tuple(down(x).shape))

bottleneck = Bottleneck(256, 64, stride=1, shortcut=nn.Identity())
print("bottleneck keeps", tuple(bottleneck(torch.randn(1, 256, 8, 8)).shape), "- expansion", Bottleneck.expansion)

# %%
# A whole network
# ---------------
# ``create_model`` builds every ResNet by name. The CIFAR stem is one 3x3 convolution with no max-pool (the
# images are only 32x32); global average pooling and one linear layer end the network. ResNet-18 for 10 classes
# has exactly 11,173,962 parameters.
from resnet_cifar import create_model
from resnet_cifar.models.summary import count_parameters

net = create_model("resnet18", num_classes=10)
print(f"ResNet-18: {count_parameters(net):,} parameters")
print(net.layer1)

# %%
# The layer-by-layer summary
# --------------------------
# ``summary_text`` is torchinfo's table (output shape, parameters and multiply-accumulates of every layer),
# followed by the shape after the stem and after each stage. The command line prints the same:
# ``resnet-cifar summary resnet18``.
from resnet_cifar.models.summary import stage_shapes, summary_text

print(summary_text(net, (3, 32, 32), depth=2))

# %%
# The shape after each stage
# --------------------------
# Each stage after the first halves the resolution and doubles the channels; the head turns the 512 channels of
# a 4x4 map into 10 logits.
for name, shape in stage_shapes(net, (3, 32, 32)):
    print(f"{name:8} {shape}")

# %%
# The paper's CIFAR nets, and their plain twins
# ---------------------------------------------
# He et al.'s CIFAR ResNets have 6n+2 layers, 16/32/64 channels and a parameter-free shortcut (option A: subsample
# and pad with zero channels). A *plain* net has the same layers without the shortcuts: the degradation tutorial
# trains both.
for name in ("resnet20", "resnet56", "plain56", "resnet50"):
    model = create_model(name)
    print(f"{name:9} {count_parameters(model):>11,} parameters, logits {tuple(model(torch.zeros(2, 3, 32, 32)).shape)}")
