"""Using a trained model: load it (weights, exported files, shipped and published weights), evaluate, predict,
export it for runtimes (ONNX Runtime, OpenVINO, torch.export) and run it there, in float32 or int8."""
