"""The studio's changes to a social post from its preview card: edit within the platform's limit, and publish
again only with the receiver checked and a supervisor's session."""

import re

from models.db import Database
from models.enums import Platform, PublishState, Role
from tests.api.test_social_post_changes import a_post, post_row, wait_state
from tests.studio.test_studio_http import csrf_of, signed_in
from tests.support.stack import RunningStack, Tenant
from tests.support.webhook_receiver import receiving


async def test_edit_and_publish_again_from_the_preview(stack: RunningStack, tenant: Tenant, db: Database) -> None:
    async with receiving() as receiver:
        hook = await stack.http.put(
            "/api/v1/tenant/webhook", json={"url": receiver.url}, headers=tenant.headers(Role.ADMIN)
        )
        receiver.secret = hook.json()["secret"]
        _, post = await a_post(db, tenant, platform=Platform.BLUESKY, state=PublishState.UNCONFIRMED)
        blog_post = (await post_row(db, post)).blog_post_id
        previews = f"/studio/blogposts/{blog_post}/social"

        async with signed_in(stack, tenant.keys[Role.MARKETER]) as marketer:
            page = await marketer.get(previews)
            assert page.status_code == 200 and "The receiver may already have this post" in page.text
            assert re.search(r'<button type="submit" disabled aria-describedby="why-again-', page.text)
            refused = await marketer.post(
                f"/studio/social-posts/{post}/publish-again",
                data={"csrf_token": csrf_of(page.text), "receiver_checked": "yes"},
            )
            assert refused.status_code == 303 and "error=" in refused.headers["location"]
            assert (await post_row(db, post)).publish_state == PublishState.UNCONFIRMED

            # Editing: over Bluesky's 300 graphemes is refused with the count, nothing changed.
            long = await marketer.post(
                f"/studio/social-posts/{post}/text", data={"csrf_token": csrf_of(page.text), "text": "é" * 301}
            )
            shown = await marketer.get(long.headers["location"])
            assert "301 graphemes; Bluesky allows 300" in shown.text and "Nothing was changed" in shown.text
            ok = await marketer.post(
                f"/studio/social-posts/{post}/text",
                data={"csrf_token": csrf_of(page.text), "text": "Shorter <script>x</script> #ops"},
            )
            shown = await marketer.get(ok.headers["location"])
            assert "Text saved." in shown.text and "&lt;script&gt;x&lt;/script&gt;" in shown.text
            assert (await post_row(db, post)).hashtags == ["ops"]

        async with signed_in(stack, tenant.keys[Role.SUPERVISOR]) as supervisor:
            page = await supervisor.get(previews)
            unticked = await supervisor.post(
                f"/studio/social-posts/{post}/publish-again", data={"csrf_token": csrf_of(page.text)}
            )
            assert "Check the receiver first" in (await supervisor.get(unticked.headers["location"])).text
            no_csrf = await supervisor.post(
                f"/studio/social-posts/{post}/publish-again", data={"receiver_checked": "yes"}
            )
            assert no_csrf.status_code == 403
            sent = await supervisor.post(
                f"/studio/social-posts/{post}/publish-again",
                data={"csrf_token": csrf_of(page.text), "receiver_checked": "yes"},
            )
            assert "Publishing again" in (await supervisor.get(sent.headers["location"])).text
            published = await wait_state(db, post, PublishState.PUBLISHED)
            assert published.text == "Shorter <script>x</script> #ops"
            assert len(receiver.held) == 1
