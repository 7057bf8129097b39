"""The pipeline's quick DB work on the `pipeline` queue: the Pipeline row through its store, with the decisions
and gate items that travel with each write."""

from temporalio import activity

from models.db import Database
from models.names import Activity
from models.pipeline import ItemList
from models.records import BranchRecord, PipelineRecord
from models.stores.pipelines import PipelineStore


class PipelineActivities:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.store = PipelineStore(db)

    @activity.defn(name=Activity.RECORD_PIPELINE)
    async def record_pipeline(self, record: PipelineRecord) -> ItemList:
        """The pipeline workflow's part of its row, the decisions it carries, and the items of a gate opening."""
        return await self.store.record(record)

    @activity.defn(name=Activity.RECORD_BRANCH)
    async def record_branch(self, record: BranchRecord) -> ItemList:
        """A topic branch's part of its pipeline's row, with its blog verdict or re-queued posts."""
        return await self.store.record_branch(record)
