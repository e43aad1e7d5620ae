"""Experiments made of several training runs: the degradation figure, the paper's CIFAR table, model comparisons."""
