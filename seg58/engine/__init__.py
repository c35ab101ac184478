"""Training and inference, plain PyTorch: the Trainer with its Callback base (hooks with no-op
methods; the typed StopReason from base), ready-made hooks (early stopping, pruning through a
callable), the evaluator and the validation pass, whole-image and sliding-window inference with
TTA (at native resolution: band by band into tiled TIFFs), checkpoints, runtime (device, threads,
AMP, memory peaks), best-epoch visuals, ONNX export and the measuring primitives of `seg58 bench`.
Part of the core: may import base, data and modeling (and torch, numpy, PIL, tifffile, tqdm);
never hydra, omegaconf, mlflow, submitit or optuna."""
