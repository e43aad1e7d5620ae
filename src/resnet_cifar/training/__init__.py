"""Training: a run's settings and recipes, its parts, the epoch loop, callbacks (reports and policies),
checkpoints written and resumed, signals and faults."""
