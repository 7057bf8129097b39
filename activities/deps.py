"""What every activity needs, built once per worker process and shared by the activity instances."""

from dataclasses import dataclass

from models.db import Database
from models.settings import Settings
from providers.router import ProviderRouter


@dataclass
class StageDeps:
    db: Database
    router: ProviderRouter
    settings: Settings
