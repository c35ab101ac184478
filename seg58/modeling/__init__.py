"""What the network is and how it is scored: SMP models and their compatibility rules, encoder
weights from the hub cache, losses, the fine/coarse/binary damage hierarchy, confusion-matrix
metrics, calibration (ECE bins) and the per-pixel entropy of predicted probabilities. Part of
the core: may import base (and torch, SMP, timm, huggingface_hub); never data's loaders, engine,
or any edge framework."""
