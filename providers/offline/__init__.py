"""The offline provider: deterministic, clearly marked sample content that satisfies every stage schema.

One module per job: `sampling` (seeded prose), `research` (sources, notes, DNA), `audience` (personas, topics),
`blog`, `social`, `images`, `video`, `schema_fill` (which generator answers a schema, and a generic value for any
other schema) and `provider` (the gateway interface, with injectable latency and faults).
"""

from providers.offline.provider import OFFLINE_MODEL, Fault, OfflineProvider
from providers.offline.research import SAMPLE_SOURCE_TITLE

__all__ = ["OFFLINE_MODEL", "SAMPLE_SOURCE_TITLE", "Fault", "OfflineProvider"]
