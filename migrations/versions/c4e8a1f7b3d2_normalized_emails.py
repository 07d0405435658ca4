"""E-mail addresses in their one form: NFKC, case-folded, the domain in IDNA

The API now stores and compares every address as `accounts.normalize_email` gives it
(`u@bücher.example` is `u@xn--bcher-kva.example`, `ﬁle@` is `file@`, `FILE@` is `file@`). This
rewrites the addresses already stored. Two accounts whose addresses become one are never merged:
the upgrade stops before changing anything and lists them, for an operator to decide (change
one address, or delete one account) before running it again. An address that cannot be a
mailbox by the new rules is left as stored and listed as a warning: its account cannot sign in
until an operator changes it.

Revision ID: c4e8a1f7b3d2
Revises: c4f1a9e07d52
Create Date: 2026-12-06 10:00:00.000000

"""

import logging
from collections import defaultdict

import sqlalchemy as sa
from alembic import op

revision = "c4e8a1f7b3d2"
down_revision = "c4f1a9e07d52"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")


class EmailCollision(RuntimeError):
    pass


def upgrade():
    # The normaliser the API uses, not a copy: the stored form must be exactly what login looks up.
    from app.services.accounts import normalize_email

    connection = op.get_bind()
    rows = connection.execute(sa.text("SELECT id, email FROM users WHERE email IS NOT NULL ORDER BY id")).all()
    changes, owners = {}, defaultdict(list)
    for user_id, email in rows:
        try:
            normalized = normalize_email(email)
        except ValueError as error:
            log.warning("users.id %s: %r is not a mailbox (%s); left as it is: it cannot sign in", user_id, email, error)
            normalized = email
        owners[normalized].append((user_id, email))
        if normalized != email:
            changes[user_id] = normalized
    collisions = {address: users for address, users in owners.items() if len(users) > 1}
    if collisions:
        lines = [
            f"  {address}: " + ", ".join(f"users.id {user_id} ({email!r})" for user_id, email in users)
            for address, users in sorted(collisions.items())
        ]
        raise EmailCollision(
            "These accounts' e-mail addresses are one mailbox once normalised; nothing was changed. "
            "Give all but one of each another address, or delete them, then upgrade again:\n" + "\n".join(lines)
        )
    update = sa.text("UPDATE users SET email = :email WHERE id = :id")
    for user_id, normalized in changes.items():
        connection.execute(update, {"id": user_id, "email": normalized})
    if changes:
        log.info("normalised %d e-mail addresses", len(changes))


def downgrade():
    pass  # the earlier forms are not kept; the normalised ones work with the earlier code too
