"""The pipeline's quick DB work on the `pipeline` queue: the Pipeline row through its store, with the decisions
and gate items that travel with it."""

from temporalio import activity

from models.db import Database
from models.names import Activity
from models.pipeline import BlogVerdict, IdList, ItemList, ItemRequest, JobSpec, PersonaSelection, TopicVerdicts
from models.records import BranchRecord, PipelineRecord
from models.stores.jobs import JobStore
from models.stores.pipelines import PipelineStore


class PipelineActivities:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.store = PipelineStore(db)
        self.jobs = JobStore(db)

    @activity.defn(name="create_job")
    async def create_job(self, spec: JobSpec) -> bool:
        """The AIJob row of a pipeline stage; its id comes from the workflow, so a retry inserts nothing new.
        Kept for workflows started before each stage activity made its own row (see StageInput.spec)."""
        return await self.jobs.create(spec)

    @activity.defn(name=Activity.RECORD_PIPELINE)
    async def record_pipeline(self, record: PipelineRecord) -> ItemList:
        """The pipeline workflow's part of its row, the decisions it carries, and the items of a gate opening."""
        return await self.store.record(record)

    @activity.defn(name=Activity.RECORD_BRANCH)
    async def record_branch(self, record: BranchRecord) -> ItemList:
        """A topic branch's part of its pipeline's row, with its blog verdict or re-queued posts."""
        return await self.store.record_branch(record)

    # ---- kept for workflows started before decisions travelled with the records -----------------------

    @activity.defn(name=Activity.APPLY_PERSONA_SELECTION)
    async def apply_persona_selection(self, selection: PersonaSelection) -> None:
        await self.store.apply(personas=selection)

    @activity.defn(name=Activity.APPLY_TOPIC_VERDICTS)
    async def apply_topic_verdicts(self, verdicts: TopicVerdicts) -> None:
        await self.store.apply(topics=verdicts)

    @activity.defn(name=Activity.APPLY_BLOG_VERDICT)
    async def apply_blog_verdict(self, verdict: BlogVerdict) -> None:
        await self.store.apply(blog=verdict)

    @activity.defn(name=Activity.REQUEUE_POSTS)
    async def requeue_posts(self, posts: IdList) -> int:
        return await self.store.requeue(posts.ids)

    @activity.defn(name=Activity.GATE_ITEMS)
    async def gate_items(self, request: ItemRequest) -> ItemList:
        return await self.store.items(request)
