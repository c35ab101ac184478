"""The data: ARTeFACT-format folders (images, single-channel masks, metadata), checked file by
file; split protocols (random, leave-one-material/content-out, grouped by source image); the
synthetic look-alike dataset; the ARTeFACT parquet importer and offline augmentation; pre-loading
into shared memory, albumentations transforms, loaders; content digests for lineage. Part of the
core: may import base (and numpy, PIL, torch, albumentations, pyarrow); never modeling, engine or
any edge framework."""
