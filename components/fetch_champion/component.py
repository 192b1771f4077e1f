"""The fetch_champion component: the registry's current champion of a model, downloaded for the
steps that compare new data or a new model with it (drift monitoring, batch scoring)."""

from kfp import dsl
from kfp.dsl import Model, Output

from mlstages.components.common.images import image


# The champion is found at run time (champion.json in the registry), so a dsl.importer with a
# compile-time URI cannot name it, and kfp.local's importer does not download gs:// URIs (it hands
# the task a local path that does not exist). A task that reads the pointer and downloads the
# version works the same on kfp.local and on a cluster.
@dsl.component(base_image=image("fetch_champion"), install_kfp_package=False)
def fetch_champion(model_registry: str, model_name: str, model: Output[Model]) -> str:
    """Downloads the current champion of a model from the model registry.

    The champion is the version deploy last made current (the registry's champion pointer); the
    download holds its model.joblib, its model card (metadata.json), its reference.json and, when
    evaluate attached one, its evaluation.json. It reads the outside world (the pointer moves): run
    it with caching off.

    Args:
        model_registry: The registry root: gs://bucket/models or a folder.
        model_name: The model's name in the registry.

    Returns:
        model: The champion's model directory (model.joblib, metadata.json, reference.json).
        Output: The champion's registry URI.
    """
    # Threads capped before anything heavy is imported, then the progress lines (task_start.py).
    from mlstages.components.common.task_start import start_task

    start_task()

    from mlstages.components.common.registry import download_champion

    pointer = download_champion(model_registry, model_name, model.path)
    model.metadata.update({"model_uri": pointer["model_uri"], "version": pointer.get("version", "")})
    return pointer["model_uri"]
