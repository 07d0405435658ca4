"""/v1/actors: the casting catalogue's people."""

from flask.views import MethodView

from app.auth import requires_permission
from app.extensions import db
from app.http import Blueprint
from app.models import Actor
from app.schemas.casting import (
    ActorListArgs,
    ActorListResponse,
    ActorResponse,
    ActorSchema,
    MovieListArgs,
    MovieListResponse,
)
from app.schemas.common import DeletedSchema
from app.services.casting import actor_page, actors_query, movie_page, movies_query
from app.services.crud import (
    apply_changes,
    created,
    delete_and_confirm,
    first_or_404,
    found,
    require_changes,
)

blp = Blueprint("actors", __name__, url_prefix="/v1/actors", description="Actors (casting catalogue)")


def _actor(actor_id):
    return first_or_404(actors_query().where(Actor.id == actor_id))


@blp.route("")
class Actors(MethodView):
    @requires_permission("get:actors")
    @blp.arguments(ActorListArgs, location="query", error_status_code=400)
    @blp.response(200, ActorListResponse)
    def get(self, args):
        """List actors (q searches the name; filter by gender, min_age, max_age)."""
        return actor_page(actors_query(), args)

    @requires_permission("post:actors")
    @blp.arguments(ActorSchema)
    @blp.response(201, ActorResponse)
    def post(self, data):
        """Add an actor."""
        actor = Actor(**data)
        db.session.add(actor)
        db.session.commit()
        return created("actor", actor, f"/v1/actors/{actor.id}")


@blp.route("/<id:actor_id>")
class ActorDetail(MethodView):
    @requires_permission("get:actors")
    @blp.response(200, ActorResponse)
    def get(self, actor_id):
        """Get an actor."""
        return found("actor", _actor(actor_id))

    @requires_permission("patch:actors")
    @blp.arguments(ActorSchema(partial=True))
    @blp.response(200, ActorResponse)
    def patch(self, data, actor_id):
        """Change the fields given."""
        require_changes(data)
        actor = _actor(actor_id)
        apply_changes(actor, data)
        db.session.commit()
        return found("actor", actor)

    @requires_permission("delete:actors")
    @blp.response(200, DeletedSchema)
    def delete(self, actor_id):
        """Delete an actor; they leave every cast."""
        return delete_and_confirm(_actor(actor_id))


@blp.route("/<id:actor_id>/movies")
class ActorMovies(MethodView):
    @requires_permission("get:actors")
    @blp.arguments(MovieListArgs, location="query", error_status_code=400)
    @blp.response(200, MovieListResponse)
    def get(self, args, actor_id):
        """The movies an actor plays in."""
        actor = _actor(actor_id)
        return movie_page(movies_query(), {**args, "actor_id": actor.id})
