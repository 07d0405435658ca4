"""/v1/actors: the casting catalogue's people."""

from functools import partial

from flask.views import MethodView
from sqlalchemy import select

from app.api.blueprint import Blueprint
from app.api.conditional import for_write
from app.api.idempotency import idempotent
from app.api.lists import ACTOR_MOVIES, ACTORS
from app.api.responses import created, deleted, found, listed
from app.auth import requires_permission
from app.extensions import db
from app.models import Actor
from app.schemas.casting import ACTOR, ActorSchema
from app.services import casting

blp = Blueprint("actors", __name__, url_prefix="/actors", description="Actors (casting catalogue)")


@blp.route("", operation_ids={"get": "listActors", "post": "createActor"}, index_link="actors")
class Actors(MethodView):
    @requires_permission("get:actors")
    @blp.lists(ACTORS)
    def get(self, args):
        """List actors (q searches the name; filter by gender, min_age, max_age)."""
        return listed(ACTORS.page(select(Actor), args))

    @requires_permission("post:actors")
    @idempotent
    @blp.one(ACTOR, status=201, body=ActorSchema)
    def post(self, data):
        """Add an actor."""
        actor = casting.create_actor(data)
        return created("actor", actor, "actors.ActorDetail", actor_id=actor.id)


@blp.route("/<int:actor_id>", operation_ids={"get": "getActor", "patch": "updateActor", "delete": "deleteActor"})
class ActorDetail(MethodView):
    get = blp.shows(ACTOR, guard=requires_permission("get:actors"), summary="Get an actor.")

    @requires_permission("patch:actors")
    @blp.one(ACTOR, body=ActorSchema(partial=True))
    def patch(self, data, actor_id):
        """Change the fields given."""
        return found("actor", casting.update_actor(for_write(ACTOR, actor_id), data))

    @requires_permission("delete:actors")
    @blp.deletes(ACTOR)
    def delete(self, actor_id):
        """Delete an actor; they leave every cast."""
        casting.delete_actor(for_write(ACTOR, actor_id))
        return deleted(actor_id)


@blp.route("/<int:actor_id>/movies", operation_ids={"get": "listActorMovies"})
class ActorMovies(MethodView):
    @requires_permission("get:actors")
    @blp.lists(ACTOR_MOVIES)
    def get(self, args, actor_id):
        """The movies an actor plays in."""
        return listed(ACTOR_MOVIES.page(casting.movies_of(actor_id), args, of=partial(db.get_or_404, Actor, actor_id)))
