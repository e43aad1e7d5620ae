"""
What the model looked at, and how far to trust it
=================================================

Accuracy says how often a model is right. Users also ask *why* it decided (which pixels drove the answer) and
*how far to trust* its probabilities: does "90% sure" mean right nine times in ten, and what happens when the
images are not as clean as the training set? This tutorial asks all three of the shipped ResNet-20, on the
bundled sample's 500 test images.
"""

# %%
# Grad-CAM on its mistakes
# ------------------------
# ``evaluate(..., explain=True)`` draws the test images with each one's Grad-CAM map laid over it: the regions
# of the last stage's feature maps that raised the score of the predicted class. On the mistakes it shows what
# misled the model. (``resnet-cifar explain --pretrained resnet20 cat.png`` explains any image.)
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt

from resnet_cifar import evaluate, load_dataset, load_pretrained

out = Path(tempfile.mkdtemp())
results = evaluate(load_pretrained("resnet20"), dataset="cifar10-sample", out_dir=out, device="cpu", explain=True)
print(f"accuracy {results['accuracy']:.2%} on the sample's {results['images']} test images")


def show(path: Path, size: tuple[float, float] = (8, 8)) -> None:
    """Display a figure the toolkit wrote."""
    plt.figure(figsize=size)
    plt.imshow(plt.imread(path))
    plt.axis("off")
    plt.show()


show(out / "mistakes-cam.png")

# %%
# The reliability diagram
# -----------------------
# Group the answers by confidence and compare each group's accuracy with its mean confidence: a calibrated model
# lies on the diagonal. The expected calibration error (ECE) is the gap, weighted by how many answers fall in
# each bin. Trained with plain cross-entropy on all 50,000 images, this network is over-confident, as Guo et al.
# (2017) found for deep nets.
calibration = results["calibration"]
print(f"ECE {calibration['ece']:.2%}, negative log-likelihood {calibration['nll']:.3f}")
show(out / "reliability.png", (7, 5))

# %%
# A temperature
# -------------
# Temperature scaling divides the logits by one number T fitted to minimise the negative log-likelihood on images
# the model never trained on; the answers stay the same, only their confidence changes. ``resnet-cifar calibrate
# RUN`` fits it on the validation images a run held out (``--val-split``) and saves it with the model. The
# shipped weights kept none, so for this demonstration only we fit T on half of the sample's test images and
# measure on the other half.
import torch

from resnet_cifar.core.batches import predict_batches
from resnet_cifar.inference.calibration import calibration_report, fit_temperature

trained = load_pretrained("resnet20")
test = load_dataset("cifar10-sample", "test")
order = torch.randperm(len(test), generator=torch.Generator().manual_seed(0))
fit_half, check_half = test.subset(order[:250]), test.subset(order[250:])
temperature = fit_temperature(predict_batches(trained.model, trained.batches(fit_half)))
held_out = predict_batches(trained.model, trained.batches(check_half))
before, after = calibration_report(held_out), calibration_report(held_out.at_temperature(temperature))
print(f"T = {temperature:.2f}: ECE {before['ece']:.2%} -> {after['ece']:.2%}, "
      f"NLL {before['nll']:.3f} -> {after['nll']:.3f} on the 250 images the fit did not see")

# %%
# A few corruptions
# -----------------
# CIFAR-10-C (Hendrycks and Dietterich 2019) measures accuracy on the test images blurred, noised, fogged or
# compressed at five severities. Here three of its corruptions at severity 3; ``resnet-cifar eval RUN
# --corruptions`` measures all of them and the mean corruption accuracy the model cards report.
import numpy as np

from resnet_cifar.data import ImageSet
from resnet_cifar.data.corruptions import corrupt

pixels = test.images.permute(0, 2, 3, 1).numpy()
figure, axes = plt.subplots(1, 4, figsize=(10, 2.8))
axes[0].imshow(pixels[0])
axes[0].set_title("clean")
for axis, name in zip(axes[1:], ("gaussian_noise", "fog", "contrast")):
    corrupted = corrupt(pixels, name, severity=3, seed=0)
    images = torch.from_numpy(np.ascontiguousarray(corrupted)).permute(0, 3, 1, 2).contiguous()
    accuracy = predict_batches(trained.model, trained.batches(ImageSet(images, test.labels, test.class_names)))
    axis.imshow(corrupted[0])
    axis.set_title(f"{name}: {accuracy.accuracy:.0%}")
    print(f"{name:15} accuracy {accuracy.accuracy:.2%} (clean {results['accuracy']:.2%})")
for axis in axes:
    axis.axis("off")
plt.show()
