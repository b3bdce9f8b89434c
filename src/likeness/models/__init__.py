"""Face-swap architectures behind one registry.

>>> from likeness.models import create_model, list_models
>>> list_models()
['df', 'df_tiny', 'liae', 'liae_tiny']
>>> model = create_model("df_tiny", resolution=32)
"""

from likeness.models import df as _df  # noqa: F401  (registers df, df_tiny)
from likeness.models import liae as _liae  # noqa: F401  (registers liae, liae_tiny)
from likeness.models.registry import (
    ARCHITECTURE_OPTIONS,
    SUPPORTED_RESOLUTIONS,
    SwapAutoencoder,
    SwapModelConfig,
    architecture_options,
    count_parameters,
    create_model,
    list_models,
    model_description,
    register_model,
    resolve_config,
)

__all__ = [
    "ARCHITECTURE_OPTIONS",
    "SUPPORTED_RESOLUTIONS",
    "architecture_options",
    "SwapAutoencoder",
    "SwapModelConfig",
    "count_parameters",
    "create_model",
    "list_models",
    "model_description",
    "register_model",
    "resolve_config",
]
