"""Imports every table module so ``Base.metadata`` is complete (for Alembic and tests)."""

from digital_village.auth import models as auth_models
from digital_village.db import Base
from digital_village.iot import models as iot_models
from digital_village.ledger import models as ledger_models
from digital_village.parcels import models as parcels_models
from digital_village.regions import models as regions_models
from digital_village.registry import models as registry_models
from digital_village.trace import models as trace_models
from digital_village.trace.subscriptions import models as subscriptions_models
from digital_village.web import models as web_models

__all__ = [
    "Base",
    "auth_models",
    "iot_models",
    "ledger_models",
    "parcels_models",
    "regions_models",
    "registry_models",
    "subscriptions_models",
    "trace_models",
    "web_models",
]
