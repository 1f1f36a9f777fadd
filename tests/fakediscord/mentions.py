"""Mention resolution the way Discord does it: parse content, then filter by ``allowed_mentions``.

Discord's defaults when ``allowed_mentions`` is absent (api-docs resources/message.mdx):
regular channel messages parse users, roles and @everyone/@here; interaction responses and
webhooks (interaction follow-ups) parse users only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

from .models import FakeGuild, FakeUser, Perm, form_error

EVERYONE_RE = re.compile(r"@(everyone|here)")
USER_RE = re.compile(r"<@!?(\d{1,20})>")
ROLE_RE = re.compile(r"<@&(\d{1,20})>")

DEFAULT_PARSE = {
    "channel": ["users", "roles", "everyone"],
    "interaction": ["users"],
    "webhook": ["users"],
}


@dataclass
class Pings:
    everyone: bool = False
    role_ids: list[int] = field(default_factory=list)
    user_ids: list[int] = field(default_factory=list)


def validate_allowed_mentions(allowed: Optional[dict], path: str = "allowed_mentions") -> None:
    """Raise a 400/50035 for payloads Discord rejects."""
    if allowed is None:
        return
    if not isinstance(allowed, dict):
        raise form_error(path, "Must be an object.", "MODEL_TYPE_CONVERT")
    parse = allowed.get("parse") or []
    for value in parse:
        if value not in ("users", "roles", "everyone"):
            raise form_error(f"{path}.parse", f"Value \"{value}\" is not a valid enum value.", "BASE_TYPE_CHOICES")
    users = allowed.get("users") or []
    roles = allowed.get("roles") or []
    if "users" in parse and users:
        raise form_error(f"{path}", "parse:[\"users\"] and users: [ids...] are mutually exclusive.", "MUTUALLY_EXCLUSIVE")
    if "roles" in parse and roles:
        raise form_error(f"{path}", "parse:[\"roles\"] and roles: [ids...] are mutually exclusive.", "MUTUALLY_EXCLUSIVE")
    if len(users) > 100 or len(roles) > 100:
        raise form_error(path, "Must be 100 or fewer in length.", "BASE_TYPE_MAX_LENGTH")


def compute_pings(
    content: str,
    allowed: Optional[dict],
    source: str,
    *,
    guild: Optional[FakeGuild],
    author_id: int,
    known_users: dict[int, FakeUser],
    replied_user_id: Optional[int] = None,
) -> Pings:
    content = content or ""
    if allowed is None:
        parse = DEFAULT_PARSE[source]
        allowed_users: list[int] = []
        allowed_roles: list[int] = []
        replied = source == "channel"
    else:
        parse = allowed.get("parse") or []
        allowed_users = [int(u) for u in allowed.get("users") or []]
        allowed_roles = [int(r) for r in allowed.get("roles") or []]
        replied = bool(allowed.get("replied_user", False))

    author_perms = guild.permissions_for(author_id) if guild is not None else 0
    can_everyone = bool(author_perms & Perm.MENTION_EVERYONE)

    pings = Pings()
    if guild is not None and "everyone" in parse and EVERYONE_RE.search(content) and can_everyone:
        pings.everyone = True

    if guild is not None:
        for match in ROLE_RE.finditer(content):
            rid = int(match.group(1))
            role = guild.roles.get(rid)
            if role is None or rid == guild.id or rid in pings.role_ids:
                continue
            if ("roles" in parse or rid in allowed_roles) and (role.mentionable or can_everyone):
                pings.role_ids.append(rid)

    for match in USER_RE.finditer(content):
        uid = int(match.group(1))
        if uid not in known_users or uid in pings.user_ids:
            continue
        if "users" in parse or uid in allowed_users:
            pings.user_ids.append(uid)

    if replied_user_id is not None and replied and replied_user_id not in pings.user_ids:
        pings.user_ids.append(replied_user_id)
    return pings
