"""/v1/actors: the casting catalogue's people."""

from functools import partial

from flask.views import MethodView
from sqlalchemy import select

from app.api.conditional import conditional, for_write
from app.api.idempotency import idempotent
from app.api.lists import ACTOR_MOVIES, ACTORS
from app.api.responses import created, deleted, found, listed
from app.auth import requires_permission
from app.extensions import db
from app.fields import DeletedSchema
from app.http import Blueprint
from app.models import Actor
from app.schemas.casting import ActorListResponse, ActorResponse, ActorSchema, MovieListResponse
from app.services import casting
from app.services.crud import require_changes

blp = Blueprint("actors", __name__, url_prefix="/actors", description="Actors (casting catalogue)")


@blp.route("")
class Actors(MethodView):
    @requires_permission("get:actors")
    @blp.arguments(ACTORS.args, location="query", error_status_code=400)
    @blp.response(200, ActorListResponse)
    def get(self, args):
        """List actors (q searches the name; filter by gender, min_age, max_age)."""
        return listed(ACTORS.page(select(Actor), args))

    @requires_permission("post:actors")
    @idempotent
    @blp.arguments(ActorSchema)
    @blp.response(201, ActorResponse)
    @conditional
    def post(self, data):
        """Add an actor."""
        actor = casting.create_actor(data)
        return created("actor", actor, "actors.ActorDetail", actor_id=actor.id)


@blp.route("/<id:actor_id>")
class ActorDetail(MethodView):
    @requires_permission("get:actors")
    @blp.response(200, ActorResponse)
    @conditional
    def get(self, actor_id):
        """Get an actor."""
        return found("actor", db.get_or_404(Actor, actor_id))

    @requires_permission("patch:actors")
    @blp.arguments(ActorSchema(partial=True))
    @blp.response(200, ActorResponse)
    @conditional
    def patch(self, data, actor_id):
        """Change the fields given."""
        require_changes(data)
        return found("actor", casting.update_actor(for_write(Actor, actor_id), data))

    @requires_permission("delete:actors")
    @blp.response(200, DeletedSchema)
    @conditional
    def delete(self, actor_id):
        """Delete an actor; they leave every cast."""
        casting.delete_actor(for_write(Actor, actor_id))
        return deleted(actor_id)


@blp.route("/<id:actor_id>/movies")
class ActorMovies(MethodView):
    @requires_permission("get:actors")
    @blp.arguments(ACTOR_MOVIES.args, location="query", error_status_code=400)
    @blp.response(200, MovieListResponse)
    def get(self, args, actor_id):
        """The movies an actor plays in."""
        return listed(ACTOR_MOVIES.page(casting.movies_of(actor_id), args, of=partial(db.get_or_404, Actor, actor_id)))
