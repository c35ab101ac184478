"""MLflow's "model from code" entry of seg58's pyfunc model (seg58/tracking/model.py): MLflow runs this
file to load a logged model, so no pickled object travels with it. Not imported by seg58 itself."""

from mlflow.models import set_model

from seg58.tracking.model import Seg58Model

set_model(Seg58Model())
