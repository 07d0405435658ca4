"""Sessions: each sign-in of a device (a login or a registration), continued by the refresh tokens
rotated from it, and ended one at a time or all at once.

A session is a row; every token issued in it carries its id (`sid`), and app.auth refuses a token
whose session row is gone, in the statement that loads the token's user. So ending a session is
deleting its row: its refresh token and its access tokens stop at once, on every instance.

A refresh replaces the session's `refresh_jti` with a conditional UPDATE (`WHERE refresh_jti = <the
token's jti>`): of two uses of one refresh token one wins, and of a refresh and an end of the same
session either the end comes first (the UPDATE finds no row: 401) or the refresh does (its new
tokens carry the sid whose row the end then deletes). Either way no token of an ended session lives.

These functions flush; the request commits (docs/transactions.md).
"""

import re
from collections import namedtuple
from datetime import timezone

from sqlalchemy import delete, or_, select, update

from app.auth import ACCESS, MSG_REVOKED, REFRESH, encode_token, new_jti, token_lifetime
from app.errors import not_found, unauthorized
from app.extensions import db
from app.models import User, UserSession
from app.models.base import utcnow
from app.models.session import IP_LENGTH, USER_AGENT_LENGTH

# A login beyond this many live sessions ends the least recently used ones: the list stays short,
# and the table cannot grow without bound through one account.
MAX_SESSIONS_PER_USER = 100
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")

# Where a request comes from, as the session shows it: the User-Agent header and the client address.
Client = namedtuple("Client", "user_agent ip")


def issue_tokens(user, session):
    """The access and refresh tokens of `session`, issued when it was last used; the refresh token's
    jti is the one the session holds. Signed before the transaction commits, from what it wrote."""
    issued = session.last_used_at.replace(tzinfo=timezone.utc)
    access = encode_token(user, ACCESS, session.id, issued=issued)
    refresh = encode_token(user, REFRESH, session.id, jti=session.refresh_jti, issued=issued)
    return access, refresh


def _now():
    """Whole seconds: the tokens' `iat` and `exp` have no fraction, and the session's times match them."""
    return utcnow().replace(microsecond=0)


def _user_agent(value):
    """Printable and at most USER_AGENT_LENGTH characters; None for none."""
    value = CONTROL_CHARACTERS.sub("", value or "").strip()[:USER_AGENT_LENGTH]
    return value or None


def _client_columns(client, now):
    return {
        "last_used_at": now,
        "expires_at": now + token_lifetime(REFRESH),
        "user_agent": _user_agent(client.user_agent),
        "ip": (client.ip or None) and client.ip[:IP_LENGTH],
    }


def start_session(user, client):
    """A new session of `user` (a login or registration), holding its first refresh token's jti."""
    now = _now()
    _forget_old_sessions(user.id, now)
    session = UserSession(user_id=user.id, refresh_jti=new_jti(), created_at=now, **_client_columns(client, now))
    db.session.add(session)
    db.session.flush()
    return session


def _forget_old_sessions(user_id, now):
    """Delete the user's expired sessions, and the least recently used beyond the cap (with the
    one about to start, the user has MAX_SESSIONS_PER_USER)."""
    beyond_cap = (
        select(UserSession.id)
        .where(UserSession.user_id == user_id)
        .order_by(UserSession.last_used_at.desc(), UserSession.id.desc())
        .offset(MAX_SESSIONS_PER_USER - 1)
    )
    db.session.execute(
        delete(UserSession)
        .where(UserSession.user_id == user_id)
        .where(or_(UserSession.expires_at <= now, UserSession.id.in_(beyond_cap)))
        .execution_options(synchronize_session=False)
    )


def continue_session(claims, client):
    """The session of a refresh token, moved on to a new refresh token; 401 if the token was spent
    already or its session has ended (one conditional UPDATE decides, see the module's docstring)."""
    now = _now()
    continued = db.session.scalars(
        update(UserSession)
        .where(
            UserSession.id == claims["sid"],
            UserSession.user_id == int(claims["sub"]),
            UserSession.refresh_jti == claims["jti"],
        )
        .values(refresh_jti=new_jti(), **_client_columns(client, now))
        .returning(UserSession)
        .execution_options(synchronize_session=False)
    ).first()
    if continued is None:
        raise unauthorized(MSG_REVOKED)
    return continued


def live_sessions(user, current_id):
    """The user's sessions that have neither ended nor expired, most recently used first;
    `current` marks the one with `current_id` (the caller's)."""
    found = db.session.scalars(
        select(UserSession)
        .where(UserSession.user_id == user.id, UserSession.expires_at > utcnow())
        .order_by(UserSession.last_used_at.desc(), UserSession.id.desc())
    ).all()
    for session in found:
        session.current = session.id == current_id
    return found


def end_session(user, session_id):
    """End one of the user's live sessions: 404 if it is not theirs, or has ended or expired."""
    ended = db.session.execute(
        delete(UserSession)
        .where(UserSession.id == session_id, UserSession.user_id == user.id, UserSession.expires_at > utcnow())
        .execution_options(synchronize_session=False)
    )
    if ended.rowcount == 0:
        raise not_found()


def end_session_of(claims):
    """End the session a token of the caller belongs to, if it still lives (a logout)."""
    db.session.execute(
        delete(UserSession)
        .where(UserSession.id == claims["sid"], UserSession.user_id == int(claims["sub"]))
        .execution_options(synchronize_session=False)
    )


def end_every_session(user):
    """End all the user's sessions and void every token issued before now, sessions or not (tokens
    from before sessions existed carry none): a password change or reset."""
    db.session.execute(
        delete(UserSession).where(UserSession.user_id == user.id).execution_options(synchronize_session=False)
    )
    # In SQL, not from the value read: two concurrent changes must move it twice.
    user.token_version = User.token_version + 1
    db.session.flush()


def purge_expired():
    """Delete every user's expired sessions (manage.py purge-tokens): how many went."""
    return db.session.execute(delete(UserSession).where(UserSession.expires_at <= utcnow())).rowcount
