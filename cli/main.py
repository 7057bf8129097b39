"""The `content-pipeline` command: the dev stack, the demo, tenants and API keys, migrations."""

import argparse
import asyncio
import json
import sys
import uuid
from collections.abc import Sequence

from models.enums import Role, Tier
from models.settings import get_settings


def _database_url() -> str:
    from cli.stack import resolve_database_url

    return resolve_database_url(get_settings())


async def _tenant_create(name: str, tier: Tier) -> dict[str, str]:
    from api.keys import create_tenant
    from cli.migrate import upgrade_to_head
    from models.db import Database

    url = _database_url()
    upgrade_to_head(url)
    db = Database.from_url(url, pool_size=1)
    try:
        async with db.session() as session:
            tenant, key = await create_tenant(session, name, tier)
        return {"tenantId": str(tenant.id), "apiKey": key, "tier": tier.value}
    finally:
        await db.close()


async def _apikey_create(tenant_id: uuid.UUID, role: Role) -> dict[str, str]:
    from api.keys import create_api_key
    from cli.migrate import upgrade_to_head
    from models.db import Database

    url = _database_url()
    upgrade_to_head(url)
    db = Database.from_url(url, pool_size=1)
    try:
        async with db.session() as session:
            key = await create_api_key(session, tenant_id, role)
        return {"apiKey": key, "tenantId": str(tenant_id), "role": role.value}
    finally:
        await db.close()


async def _apikey_revoke(prefix: str) -> dict[str, int]:
    from api.keys import revoke_api_key
    from models.db import Database

    db = Database.from_url(_database_url(), pool_size=1)
    try:
        async with db.session() as session:
            return {"revoked": await revoke_api_key(session, prefix)}
    finally:
        await db.close()


async def _rotate_channel_keys() -> dict[str, int]:
    from models.credentials import rotate_stored, vault_for
    from models.db import Database

    db = Database.from_url(_database_url(), pool_size=1)
    try:
        return await rotate_stored(db, vault_for(get_settings()))
    finally:
        await db.close()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="content-pipeline", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("dev", help="start the whole stack (Temporal + Web UI, PostgreSQL, worker, API) until Ctrl-C")
    commands.add_parser(
        "demo", help="run one whole demo pipeline for a sample company on the embedded stack, then stop"
    )
    commands.add_parser("migrate", help="migrate the database to the latest schema")
    commands.add_parser("worker", help="run the worker (same as python worker.py)")

    tenant = commands.add_parser("tenant", help="tenants").add_subparsers(dest="action", required=True)
    tenant_create = tenant.add_parser("create", help="create a tenant and print its admin API key as JSON")
    tenant_create.add_argument("--name", required=True)
    tenant_create.add_argument("--tier", required=True, choices=[t.value for t in Tier])

    apikey = commands.add_parser("apikey", help="API keys").add_subparsers(dest="action", required=True)
    apikey_create = apikey.add_parser("create", help="create an API key for a tenant and print it as JSON")
    apikey_create.add_argument("--tenant", required=True, type=uuid.UUID, help="the tenant id")
    apikey_create.add_argument("--role", required=True, choices=[r.value for r in Role])
    apikey_revoke = apikey.add_parser(
        "revoke", help="revoke every key with this prefix (the 8 hex characters after cpk_)"
    )
    apikey_revoke.add_argument("--prefix", required=True)

    channels = commands.add_parser("channels", help="connected channels").add_subparsers(dest="action", required=True)
    channels.add_parser(
        "rotate-keys",
        help="encrypt every stored channel credential again under the first key of CHANNEL_KEYS (see README)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "dev":
            from cli.stack import run_dev

            return run_dev(get_settings())
        if args.command == "demo":
            from cli.demo import run_demo

            return run_demo(get_settings())
        if args.command == "migrate":
            from cli.migrate import upgrade_to_head

            upgrade_to_head(_database_url())
            print("database at the latest schema")
            return 0
        if args.command == "worker":
            import worker

            worker.main()
            return 0
        if args.command == "tenant":
            print(json.dumps(asyncio.run(_tenant_create(args.name, Tier(args.tier)))))
            return 0
        if args.command == "apikey" and args.action == "create":
            print(json.dumps(asyncio.run(_apikey_create(args.tenant, Role(args.role)))))
            return 0
        if args.command == "apikey" and args.action == "revoke":
            print(json.dumps(asyncio.run(_apikey_revoke(args.prefix))))
            return 0
        if args.command == "channels" and args.action == "rotate-keys":
            print(json.dumps(asyncio.run(_rotate_channel_keys())))
            return 0
    except (LookupError, ValueError) as exc:
        print(f"content-pipeline: {exc}", file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
