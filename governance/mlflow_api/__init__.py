"""MLflow's model-registry REST API (``/api/2.0/mlflow/…``) over Modelgate's services, selectors
and permission gate, so the unmodified MLflow client registers, searches and loads governed
models here. What the client sends and expects: ../shared/mlflow-registry-api.md."""
