"""What a supervisor's decision must be to be accepted (the update validators' rules), and what a pipeline's
branches add up to when they have all ended. Pure functions of the workflows' state: no I/O, no clock."""

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.enums import BranchState, Count, Gate, PipelineStatus
    from models.names import Refusal
    from models.pipeline import BlogPostDecision, FailureDecision, SelectPersonas, TopicDecision
    from models.records import BranchOutcome, add_counts
    from workflows.gates import Gates, refuse

MIN_PERSONAS, MAX_PERSONAS = 3, 6


def check_persona_selection(gates: Gates, decided: bool, decision: SelectPersonas) -> None:
    """Gate 1: 3 to 6 distinct personas of this pipeline, once."""
    gate = gates.require(Gate.PERSONAS)
    if decided:
        raise refuse("the personas were already selected", Refusal.ALREADY_DECIDED)
    chosen = decision.selected_persona_ids
    if len(set(chosen)) != len(chosen):
        raise refuse("a persona is selected twice", Refusal.INVALID_DECISION)
    unknown = [str(i) for i in chosen if i not in gate.items]
    if unknown:
        raise refuse(f"not a persona of this pipeline: {', '.join(unknown)}", Refusal.INVALID_DECISION)
    if not MIN_PERSONAS <= len(chosen) <= MAX_PERSONAS:
        raise refuse(f"select {MIN_PERSONAS} to {MAX_PERSONAS} personas, not {len(chosen)}", Refusal.INVALID_DECISION)


def check_topic_decision(gates: Gates, decided: bool, decision: TopicDecision, limit: int) -> None:
    """Gate 2: every topic of the round approved, rejected or dropped, once; a topic at the revision limit cannot be
    rejected again (approve or drop it)."""
    gate = gates.require(Gate.TOPICS)
    if decided:
        raise refuse("this round of topics was already decided", Refusal.ALREADY_DECIDED)
    approved = decision.approved_topic_ids
    rejected = [r.topic_id for r in decision.rejected]
    everything = approved + rejected + decision.dropped_topic_ids
    if len(set(everything)) != len(everything):
        raise refuse(
            "a topic appears twice (in two of approved, rejected and dropped, or twice in one list)",
            Refusal.INVALID_DECISION,
        )
    unknown = [str(i) for i in everything if i not in gate.items]
    if unknown:
        raise refuse(f"not a topic awaiting approval: {', '.join(unknown)}", Refusal.INVALID_DECISION)
    undecided = [str(i) for i in gate.items if i not in everything]
    if undecided:
        raise refuse(
            f"decide every topic awaiting approval; undecided: {', '.join(undecided)}", Refusal.INVALID_DECISION
        )
    spent = [str(i) for i in rejected if gate.items[i].revision >= limit]
    if spent:
        raise refuse(
            f"these topics reached the limit of {limit} revisions; approve or drop them: " + ", ".join(spent),
            Refusal.REVISION_LIMIT,
        )


def check_blog_decision(gates: Gates, ours: bool, decided: bool, decision: BlogPostDecision, limit: int) -> None:
    """Gate 3: the post waiting at the gate, once per revision; changes requested with feedback, within the limit.
    `ours`: the post is this branch's (one that no longer waits was decided)."""
    item = gates.require_item(Gate.BLOGPOST, decision.blog_post_id, ours)
    if decided:
        raise refuse("this blog post revision was already decided", Refusal.ALREADY_DECIDED)
    if decision.decision == "request_changes":
        if not (decision.feedback or "").strip():
            raise refuse("request_changes needs feedback for the next revision", Refusal.INVALID_DECISION)
        if not item.can_reject:
            raise refuse(
                f"this post reached the limit of {limit} revisions; approve it or cancel the pipeline",
                Refusal.REVISION_LIMIT,
            )


def check_failure_decision(gates: Gates, ours: bool, decided: bool, decision: FailureDecision) -> None:
    """A failed branch: retry or drop, once per failure."""
    gates.require_item(Gate.FAILURE, decision.topic_id, ours)
    if decided:
        raise refuse("this failure was already decided", Refusal.ALREADY_DECIDED)


def pipeline_outcome(
    outcomes: list[BranchOutcome], *, topics_expired: str | None, reason: str | None
) -> tuple[PipelineStatus, str | None]:
    """COMPLETED only when every approved topic's posts were all published; PARTIAL when some were; FAILED (or
    EXPIRED, when deadlines alone stopped it) when none were. The reason names what was not."""
    views = [o.view for o in outcomes]
    counts = add_counts(*(o.counts for o in outcomes))
    done = [v for v in views if v.state == BranchState.DONE]
    dropped = [v for v in views if v.state == BranchState.DROPPED]
    expired = [v for v in views if v.state == BranchState.EXPIRED]
    published, unconfirmed = counts.get(Count.PUBLISHED, 0), counts.get(Count.UNCONFIRMED, 0)
    notes = []
    if dropped:
        lost = "; ".join(f"{v.title}: {v.error}" for v in dropped)
        notes.append(f"{len(dropped)} of {len(views)} topics failed and were dropped: {lost}")
    if expired:
        notes.append(f"{len(expired)} blog posts were not approved in time: " + "; ".join(v.title for v in expired))
    if unconfirmed:
        notes.append(
            f"{unconfirmed} posts are UNCONFIRMED: the receiver may hold them; check it before sending them again"
        )
    if topics_expired:
        notes.append(f"rejected topics were not decided again: {topics_expired}")
    if reason:
        notes.append(reason)
    summary = " | ".join(notes) or None
    if views and len(done) == len(views) and not unconfirmed and not topics_expired:
        return PipelineStatus.COMPLETED, summary
    if published == 0 and (expired or topics_expired) and not dropped:
        return PipelineStatus.EXPIRED, summary
    if published == 0:
        return PipelineStatus.FAILED, summary or "no topic made it to publishing"
    return PipelineStatus.PARTIAL, summary
