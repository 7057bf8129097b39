"""What a job is asked to do, typed: one model per JobType, written by the API and the pipeline into
`ai_job.params` and read back by the job's stage through `params_of`."""

import uuid
from typing import Annotated, Any, Literal, overload

from pydantic import BaseModel, Field

from models.enums import JobType, Platform

DEFAULT_VIDEO_ASPECT_RATIO = "16:9"
DEFAULT_TOPICS_PER_PERSONA = 2


class DnaParams(BaseModel):
    kind: Literal["generate_dna"] = "generate_dna"


class PersonasParams(BaseModel):
    kind: Literal["generate_personas"] = "generate_personas"
    language: str | None = None


class TopicsParams(BaseModel):
    """A plan of `count` topics for the job's persona and `month`; or, with `replaces_topic_id`, one topic
    regenerated with the supervisor's feedback (in the replaced topic's month)."""

    kind: Literal["generate_topics"] = "generate_topics"
    month: str
    count: int
    language: str | None = None
    replaces_topic_id: uuid.UUID | None = None
    feedback: str | None = None


class BlogPostParams(BaseModel):
    """`target_words` 0 means "as long as the post it revises, else the default length" (rows of old)."""

    kind: Literal["generate_blogpost"] = "generate_blogpost"
    target_words: int
    language: str | None = None
    feedback: str | None = None


class SocialParams(BaseModel):
    kind: Literal["generate_social"] = "generate_social"
    platforms: list[Platform]
    link_url: str | None = None


class ImageParams(BaseModel):
    kind: Literal["generate_image"] = "generate_image"


class VideoParams(BaseModel):
    kind: Literal["generate_video"] = "generate_video"
    aspect_ratio: str = DEFAULT_VIDEO_ASPECT_RATIO


AnyJobParams = DnaParams | PersonasParams | TopicsParams | BlogPostParams | SocialParams | ImageParams | VideoParams
JobParams = Annotated[AnyJobParams, Field(discriminator="kind")]

PARAMS_OF_TYPE: dict[JobType, type[AnyJobParams]] = {
    JobType.GENERATE_DNA: DnaParams,
    JobType.GENERATE_PERSONAS: PersonasParams,
    JobType.GENERATE_TOPICS: TopicsParams,
    JobType.GENERATE_BLOGPOST: BlogPostParams,
    JobType.GENERATE_SOCIAL: SocialParams,
    JobType.GENERATE_IMAGE: ImageParams,
    JobType.GENERATE_VIDEO: VideoParams,
}

# Rows written before params were typed (no `kind`) may leave out what their stage then took as "not given".
_UNTYPED_DEFAULTS: dict[JobType, dict[str, Any]] = {
    JobType.GENERATE_TOPICS: {"month": "", "count": DEFAULT_TOPICS_PER_PERSONA},
    JobType.GENERATE_BLOGPOST: {"target_words": 0},
    JobType.GENERATE_SOCIAL: {"platforms": []},
}
# ... and spelled some keys the API's way.
_UNTYPED_KEYS: dict[str, str] = {"aspectRatio": "aspect_ratio"}


@overload
def params_of(job_type: Literal[JobType.GENERATE_DNA], raw: dict[str, Any] | None) -> DnaParams: ...
@overload
def params_of(job_type: Literal[JobType.GENERATE_PERSONAS], raw: dict[str, Any] | None) -> PersonasParams: ...
@overload
def params_of(job_type: Literal[JobType.GENERATE_TOPICS], raw: dict[str, Any] | None) -> TopicsParams: ...
@overload
def params_of(job_type: Literal[JobType.GENERATE_BLOGPOST], raw: dict[str, Any] | None) -> BlogPostParams: ...
@overload
def params_of(job_type: Literal[JobType.GENERATE_SOCIAL], raw: dict[str, Any] | None) -> SocialParams: ...
@overload
def params_of(job_type: Literal[JobType.GENERATE_IMAGE], raw: dict[str, Any] | None) -> ImageParams: ...
@overload
def params_of(job_type: Literal[JobType.GENERATE_VIDEO], raw: dict[str, Any] | None) -> VideoParams: ...
@overload
def params_of(job_type: JobType, raw: dict[str, Any] | None) -> AnyJobParams: ...
def params_of(job_type: JobType, raw: dict[str, Any] | None) -> AnyJobParams:
    """The typed params of a job of `job_type` from what `ai_job.params` holds; pydantic's ValidationError when
    a value has the wrong type (a stage turns that into its job's failure)."""
    data = dict(raw or {})
    if "kind" not in data:
        data = {_UNTYPED_KEYS.get(key, key): value for key, value in data.items() if value is not None}
        data = {**_UNTYPED_DEFAULTS.get(job_type, {}), **data, "kind": job_type.value}
    return PARAMS_OF_TYPE[job_type].model_validate(data)


def stored_params(params: AnyJobParams | None) -> dict[str, Any]:
    """What `ai_job.params` holds for typed params: JSON with the `kind`, without the values left unset."""
    return {} if params is None else params.model_dump(mode="json", exclude_none=True)
