"""A run's dataset in MLflow: the dataset input the UI shows (digest, source, class profile), and
the warning when the data on disk no longer has the digest a run recorded."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from seg58.data.lineage import Lineage, data_changed_warning

log = logging.getLogger(__name__)


def dataset_input(lineage: Lineage, context: str = "train") -> Any:
    """MLflow's dataset entity for a folder (a local source, so mlflow.data.get_source works),
    with the profile that the UI's dataset drawer shows."""
    import json

    from mlflow.data.sources import LocalArtifactDatasetSource
    from mlflow.entities import Dataset, DatasetInput, InputTag

    source = LocalArtifactDatasetSource(str(lineage.root))
    dataset = Dataset(name=lineage.name, digest=lineage.digest, source_type=source._get_source_type(),
                      source=source.to_json(), profile=json.dumps(lineage.profile()))
    return DatasetInput(dataset, tags=[InputTag("mlflow.data.context", context)])


def log_dataset(client: Any, run_id: str, lineage: Lineage) -> None:
    """The run's Dataset column in the MLflow UI; lineage is worth a warning, never a failed run."""
    try:
        client.log_inputs(run_id, datasets=[dataset_input(lineage)])
    except Exception as e:
        log.warning("MLflow: dataset %s not logged as an input (%s: %s)", lineage.digest, type(e).__name__, e)


def data_change_warning(client: Any, run_id: str, root: Path, digest: str) -> str | None:
    """Today's data against the `dataset.digest` a run recorded (None: same, or not recorded)."""
    tags = client.get_run(run_id).data.tags
    return data_changed_warning(run_id, tags.get("dataset.digest"), tags.get("dataset.root"), digest, root)
