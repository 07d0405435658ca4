"""/v1/movies: the casting catalogue's movies and their casts."""

from functools import partial

from flask.views import MethodView

from app.api.conditional import conditional, for_write
from app.api.idempotency import idempotent
from app.api.lists import MOVIE_ACTORS, MOVIES
from app.api.responses import created, deleted, found, listed
from app.auth import requires_permission
from app.extensions import db
from app.fields import DeletedSchema
from app.http import Blueprint
from app.models import Movie
from app.schemas.casting import ActorListResponse, MovieListResponse, MovieResponse, MovieSchema
from app.services import casting
from app.services.crud import require_changes

blp = Blueprint("movies", __name__, url_prefix="/movies", description="Movies and their casts (casting catalogue)")


@blp.route("")
class Movies(MethodView):
    @requires_permission("get:movies")
    @blp.arguments(MOVIES.args, location="query", error_status_code=400)
    @blp.response(200, MovieListResponse)
    def get(self, args):
        """List movies with their casts (q searches the title; filter by dates or actor_id)."""
        return listed(MOVIES.page(casting.MOVIES_WITH_CASTS, args))

    @requires_permission("post:movies")
    @idempotent
    @blp.arguments(MovieSchema)
    @blp.response(201, MovieResponse)
    @blp.alt_response(409, response="CONFLICT")
    @conditional
    def post(self, data):
        """Add a movie, optionally with its cast (`actor_ids`)."""
        movie = casting.create_movie(data)
        return created("movie", movie, "movies.MovieDetail", movie_id=movie.id)


@blp.route("/<id:movie_id>")
class MovieDetail(MethodView):
    @requires_permission("get:movies")
    @blp.response(200, MovieResponse)
    @conditional
    def get(self, movie_id):
        """Get a movie with its cast."""
        return found("movie", db.get_or_404(Movie, movie_id))

    @requires_permission("patch:movies")
    @blp.arguments(MovieSchema(partial=True))
    @blp.response(200, MovieResponse)
    @blp.alt_response(409, response="CONFLICT")
    @conditional
    def patch(self, data, movie_id):
        """Change the fields given; `actor_ids` replaces the whole cast."""
        require_changes(data)
        return found("movie", casting.update_movie(for_write(Movie, movie_id), data))

    @requires_permission("delete:movies")
    @blp.response(200, DeletedSchema)
    @conditional
    def delete(self, movie_id):
        """Delete a movie (its cast rows go with it)."""
        casting.delete_movie(for_write(Movie, movie_id))
        return deleted(movie_id)


@blp.route("/<id:movie_id>/actors")
class MovieActors(MethodView):
    @requires_permission("get:movies")
    @blp.arguments(MOVIE_ACTORS.args, location="query", error_status_code=400)
    @blp.response(200, ActorListResponse)
    def get(self, args, movie_id):
        """The cast of a movie."""
        return listed(MOVIE_ACTORS.page(casting.cast_of(movie_id), args, of=partial(db.get_or_404, Movie, movie_id)))
