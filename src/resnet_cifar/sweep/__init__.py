"""resnet-cifar sweep: search training settings with Optuna, each trial an ordinary run folder."""
