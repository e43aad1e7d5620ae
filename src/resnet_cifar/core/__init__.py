"""What training and using a trained model share: the device and CPU threads, several processes, checkpoint and
model files, the one evaluation pass over batches, and what the user means by a model source."""
