"""The product's enumerations; JobType and JobStatus are exactly the seed's."""

from enum import StrEnum


class JobType(StrEnum):
    # The seed insists on the GENERATE_* prefix (never SCRAPE_* or CREATE_*).
    GENERATE_DNA = "generate_dna"
    GENERATE_PERSONAS = "generate_personas"
    GENERATE_TOPICS = "generate_topics"
    GENERATE_BLOGPOST = "generate_blogpost"
    GENERATE_SOCIAL = "generate_social"
    GENERATE_IMAGE = "generate_image"
    GENERATE_VIDEO = "generate_video"


class JobStatus(StrEnum):
    PENDING = "PENDING"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def is_terminal(self) -> bool:
        return self in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)


class Tier(StrEnum):
    FREE = "free"
    PRO = "pro"
    ULTIMATE = "ultimate"

    def includes(self, needed: "Tier") -> bool:
        """PRO has everything of FREE, ULTIMATE everything of PRO."""
        order = [Tier.FREE, Tier.PRO, Tier.ULTIMATE]
        return order.index(self) >= order.index(needed)


class Role(StrEnum):
    MARKETER = "marketer"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"

    def allows(self, needed: "Role") -> bool:
        """Admin can do everything; a supervisor can also do a marketer's work."""
        order = [Role.MARKETER, Role.SUPERVISOR, Role.ADMIN]
        return order.index(self) >= order.index(needed)


class Platform(StrEnum):
    X = "x"
    LINKEDIN = "linkedin"
    INSTAGRAM = "instagram"
    FACEBOOK = "facebook"
    THREADS = "threads"
    BLUESKY = "bluesky"
    MASTODON = "mastodon"

    @property
    def label(self) -> str:
        """The platform's name as people write it: `LinkedIn`, `X`."""
        return {"x": "X", "linkedin": "LinkedIn"}.get(self.value, self.value.capitalize())


class PipelineStatus(StrEnum):
    RUNNING = "RUNNING"
    AWAITING_APPROVAL = "AWAITING_APPROVAL"
    # Every approved topic's posts were published.
    COMPLETED = "COMPLETED"
    # Some posts were published and some were not (a branch dropped after a failure, a post UNCONFIRMED or
    # FAILED, a blog post not approved in time); `reason` says which.
    PARTIAL = "PARTIAL"
    # Nothing was published: a stage before the branches failed, or every branch was dropped.
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    # Nothing was published because a gate's deadline passed.
    EXPIRED = "EXPIRED"

    @property
    def is_terminal(self) -> bool:
        return self not in (PipelineStatus.RUNNING, PipelineStatus.AWAITING_APPROVAL)


class PipelineStage(StrEnum):
    DNA = "dna"
    PERSONAS = "personas"
    AWAITING_PERSONA_SELECTION = "awaiting_persona_selection"
    TOPICS = "topics"
    AWAITING_TOPIC_APPROVAL = "awaiting_topic_approval"
    BLOGPOSTS = "blogposts"
    AWAITING_BLOGPOST_APPROVAL = "awaiting_blogpost_approval"
    # A topic's branch failed for good and waits for a supervisor: retry it from the failed stage, or drop it.
    AWAITING_FAILURE_DECISION = "awaiting_failure_decision"
    SOCIAL = "social"
    MEDIA = "media"
    PUBLISHING = "publishing"
    DONE = "done"


class PublishState(StrEnum):
    DRAFT = "DRAFT"
    SCHEDULED = "SCHEDULED"
    # Claimed by a publish attempt that is sending it now: seen again by a retry, it means the outcome is unknown.
    PUBLISHING = "PUBLISHING"
    PUBLISHED = "PUBLISHED"
    UNCONFIRMED = "UNCONFIRMED"
    FAILED = "FAILED"


class Gate(StrEnum):
    """What a pipeline waits on a person for: the three approval gates, and a failed branch's fate."""

    PERSONAS = "personas"
    TOPICS = "topics"
    BLOGPOST = "blogpost"
    FAILURE = "failure"


class TopicStatus(StrEnum):
    PROPOSED = "PROPOSED"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    DROPPED = "DROPPED"  # given up at the gate: no blog post, not planned again


class BlogPostStatus(StrEnum):
    DRAFT = "DRAFT"
    APPROVED = "APPROVED"
    CHANGES_REQUESTED = "CHANGES_REQUESTED"


class MediaKind(StrEnum):
    IMAGE = "image"
    VIDEO = "video"


TERMINAL_PIPELINE_STATUSES = [s.value for s in PipelineStatus if s.is_terminal]


class BranchState(StrEnum):
    """Where one approved topic's branch is, from writing its blog post to its published posts."""

    WAITING = "waiting"
    WRITING = "writing"
    AWAITING_APPROVAL = "awaiting_approval"
    APPROVED = "approved"
    SOCIAL = "social"
    MEDIA = "media"
    SCHEDULED = "scheduled"
    PUBLISHING = "publishing"
    DONE = "done"
    # a stage failed for good: waiting for a supervisor to retry it from there, or to drop it
    FAILED = "failed"
    DROPPED = "dropped"
    EXPIRED = "expired"

    @property
    def is_settled(self) -> bool:
        return self in (BranchState.DONE, BranchState.DROPPED, BranchState.EXPIRED)


# The stage a pipeline shows while its branches run: the first of these that some branch is in.
BRANCH_STAGES = (
    (BranchState.AWAITING_APPROVAL, PipelineStage.AWAITING_BLOGPOST_APPROVAL),
    (BranchState.FAILED, PipelineStage.AWAITING_FAILURE_DECISION),
    (BranchState.WRITING, PipelineStage.BLOGPOSTS),
    (BranchState.WAITING, PipelineStage.BLOGPOSTS),
    (BranchState.APPROVED, PipelineStage.SOCIAL),
    (BranchState.SOCIAL, PipelineStage.SOCIAL),
    (BranchState.MEDIA, PipelineStage.MEDIA),
    (BranchState.SCHEDULED, PipelineStage.PUBLISHING),
    (BranchState.PUBLISHING, PipelineStage.PUBLISHING),
)


class Count(StrEnum):
    """What a pipeline counts (the `counts` of its record and its API view)."""

    PERSONAS = "personas"
    PERSONAS_SELECTED = "personasSelected"
    TOPICS = "topics"
    TOPICS_APPROVED = "topicsApproved"
    TOPICS_REJECTED = "topicsRejected"
    TOPICS_DROPPED = "topicsDropped"
    BLOG_POSTS = "blogPosts"
    BLOG_REVISIONS = "blogRevisions"
    SOCIAL_POSTS = "socialPosts"
    IMAGES = "images"
    VIDEOS = "videos"
    PUBLISHED = "published"
    UNCONFIRMED = "unconfirmed"
    PUBLISH_FAILED = "publishFailed"
    BRANCH_FAILURES = "branchFailures"
