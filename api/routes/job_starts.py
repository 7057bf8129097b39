"""The seed's start endpoints: one generation job each, accepted at once (202) with its workflow started."""

from collections.abc import Callable
from typing import Any

from api.errors import PROBLEMS
from api.routing import SlashRouter
from api.services.job_starts import StarterDep
from api.services.starts import START_PROBLEMS, check_month
from models.api import JobAccepted
from models.enums import Tier
from models.job_params import (
    BlogPostParams,
    DnaParams,
    ImageParams,
    PersonasParams,
    SocialParams,
    TopicsParams,
    VideoParams,
)
from models.job_requests import (
    BlogPostJobCreate,
    ImageJobCreate,
    PersonasJobCreate,
    SocialJobCreate,
    TopicsJobCreate,
    VideoJobCreate,
)
from models.tables import BlogPost, Persona, SocialPost, Topic

router = SlashRouter(prefix="/ai", tags=["jobs"])

STARTED: dict[int | str, dict[str, Any]] = {
    202: {
        "description": "the job was accepted and its workflow started "
        "(or, for a repeated Idempotency-Key, the first request's job)"
    },
    **PROBLEMS,
    **START_PROBLEMS,
}


def start_route(endpoint: str, summary: str) -> Callable[[Any], Any]:
    return router.post(
        f"/companies/{{company_id}}/{endpoint}/",
        status_code=202,
        response_model=JobAccepted,
        responses=STARTED,
        summary=summary,
    )


@start_route("scrape-dna", "Research the company's DNA (30+ sourced data points)")
async def scrape_dna(starter: StarterDep) -> JobAccepted:
    return await starter.start(DnaParams())


@start_route("generate-personas", "Propose 6 personas from the company's latest DNA")
async def generate_personas(starter: StarterDep, body: PersonasJobCreate | None = None) -> JobAccepted:
    await starter.require_dna()
    return await starter.start(PersonasParams(language=body.language if body else None))


@start_route("generate-topics", "Plan a persona's topics for a month")
async def generate_topics(body: TopicsJobCreate, starter: StarterDep) -> JobAccepted:
    persona = await starter.owned(Persona, body.persona_id, "personaId", "persona")
    check_month(body.month)
    await starter.require_dna()
    params = TopicsParams(month=body.month, count=body.count, language=body.language)
    return await starter.start(params, persona_id=persona.id)


@start_route("generate-blogpost", "Write a blog post (4 to 10 pages, cited) for a topic")
async def generate_blogpost(body: BlogPostJobCreate, starter: StarterDep) -> JobAccepted:
    topic = await starter.owned(Topic, body.topic_id, "topicId", "topic")
    params = BlogPostParams(target_words=body.target_words, language=body.language)
    return await starter.start(params, persona_id=topic.persona_id, topic_id=topic.id)


@start_route("generate-social", "Turn a blog post into one social post per platform")
async def generate_social(body: SocialJobCreate, starter: StarterDep) -> JobAccepted:
    post = await starter.owned(BlogPost, body.blog_post_id, "blogPostId", "blog post")
    params = SocialParams(platforms=body.platforms, link_url=body.link_url)
    return await starter.start(params, topic_id=post.topic_id, blog_post_id=post.id)


@start_route("generate-image", "Make the image of a social post (PRO tier and up)")
async def generate_image(body: ImageJobCreate, starter: StarterDep) -> JobAccepted:
    starter.needs(Tier.PRO, "images")
    post = await starter.owned(SocialPost, body.social_post_id, "socialPostId", "social post")
    return await starter.start(ImageParams(), blog_post_id=post.blog_post_id, social_post_id=post.id)


@start_route("generate-video", "Make a short video for a blog post (ULTIMATE tier)")
async def generate_video(body: VideoJobCreate, starter: StarterDep) -> JobAccepted:
    starter.needs(Tier.ULTIMATE, "videos")
    post = await starter.owned(BlogPost, body.blog_post_id, "blogPostId", "blog post")
    params = VideoParams(aspect_ratio=body.aspect_ratio)
    return await starter.start(params, topic_id=post.topic_id, blog_post_id=post.id)
