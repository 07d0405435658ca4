"""/v1/movies: the casting catalogue's movies and their casts."""

from functools import partial

from flask.views import MethodView

from app.api.blueprint import Blueprint
from app.api.conditional import for_write
from app.api.idempotency import idempotent
from app.api.lists import MOVIE_ACTORS, MOVIES
from app.api.responses import created, deleted, found, listed
from app.auth import requires_permission
from app.extensions import db
from app.models import Movie
from app.schemas.casting import MOVIE, MovieSchema
from app.services import casting

blp = Blueprint("movies", __name__, url_prefix="/movies", description="Movies and their casts (casting catalogue)")


@blp.route("", operation_ids={"get": "listMovies", "post": "createMovie"}, index_link="movies")
class Movies(MethodView):
    @requires_permission("get:movies")
    @blp.lists(MOVIES)
    def get(self, args):
        """List movies with their casts (q searches the title; filter by dates or actor_id)."""
        return listed(MOVIES.page(casting.MOVIES_WITH_CASTS, args))

    @requires_permission("post:movies")
    @idempotent
    @blp.one(MOVIE, status=201, body=MovieSchema, conflict=True)
    def post(self, data):
        """Add a movie, optionally with its cast (`actor_ids`)."""
        movie = casting.create_movie(data)
        return created("movie", movie, "movies.MovieDetail", movie_id=movie.id)


@blp.route("/<int:movie_id>", operation_ids={"get": "getMovie", "patch": "updateMovie", "delete": "deleteMovie"})
class MovieDetail(MethodView):
    get = blp.shows(MOVIE, guard=requires_permission("get:movies"), summary="Get a movie with its cast.")

    @requires_permission("patch:movies")
    @blp.one(MOVIE, body=MovieSchema(partial=True), conflict=True)
    def patch(self, data, movie_id):
        """Change the fields given; `actor_ids` replaces the whole cast."""
        return found("movie", casting.update_movie(for_write(MOVIE, movie_id), data))

    @requires_permission("delete:movies")
    @blp.deletes(MOVIE)
    def delete(self, movie_id):
        """Delete a movie (its cast rows go with it)."""
        casting.delete_movie(for_write(MOVIE, movie_id))
        return deleted(movie_id)


@blp.route("/<int:movie_id>/actors", operation_ids={"get": "listMovieActors"})
class MovieActors(MethodView):
    @requires_permission("get:movies")
    @blp.lists(MOVIE_ACTORS)
    def get(self, args, movie_id):
        """The cast of a movie."""
        return listed(MOVIE_ACTORS.page(casting.cast_of(movie_id), args, of=partial(db.get_or_404, Movie, movie_id)))
