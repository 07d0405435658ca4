"""/v1/movies: the casting catalogue's movies and their casts."""

from flask.views import MethodView

from app.auth import requires_permission
from app.http import Blueprint
from app.models import Movie
from app.schemas.casting import (
    ActorListArgs,
    ActorListResponse,
    MovieListArgs,
    MovieListResponse,
    MovieResponse,
    MovieSchema,
)
from app.schemas.common import DeletedSchema
from app.services.casting import (
    DUPLICATE_MOVIE,
    actor_page,
    actors_by_ids,
    actors_of_movie,
    movie_page,
    movies_query,
)
from app.services.crud import (
    apply_changes,
    commit_or_conflict,
    created,
    delete_and_confirm,
    first_or_404,
    found,
    insert_or_conflict,
    require_changes,
)

blp = Blueprint("movies", __name__, url_prefix="/v1/movies", description="Movies and their casts (casting catalogue)")


def _movie(movie_id):
    return first_or_404(movies_query().where(Movie.id == movie_id))


def _with_cast(data):
    """Swap `actor_ids` for the actors themselves (422 if any is unknown)."""
    if "actor_ids" not in data:
        return data
    fields = {key: value for key, value in data.items() if key != "actor_ids"}
    fields["actors"] = actors_by_ids(data["actor_ids"])
    return fields


@blp.route("")
class Movies(MethodView):
    @requires_permission("get:movies")
    @blp.arguments(MovieListArgs, location="query", error_status_code=400)
    @blp.response(200, MovieListResponse)
    def get(self, args):
        """List movies with their casts (q searches the title; filter by dates or actor_id)."""
        return movie_page(movies_query(), args)

    @requires_permission("post:movies")
    @blp.arguments(MovieSchema)
    @blp.response(201, MovieResponse)
    @blp.alt_response(409, response="CONFLICT")
    def post(self, data):
        """Add a movie, optionally with its cast (`actor_ids`)."""
        movie = insert_or_conflict(Movie(**_with_cast(data)), DUPLICATE_MOVIE)
        return created("movie", _movie(movie.id), f"/v1/movies/{movie.id}")


@blp.route("/<id:movie_id>")
class MovieDetail(MethodView):
    @requires_permission("get:movies")
    @blp.response(200, MovieResponse)
    def get(self, movie_id):
        """Get a movie with its cast."""
        return found("movie", _movie(movie_id))

    @requires_permission("patch:movies")
    @blp.arguments(MovieSchema(partial=True))
    @blp.response(200, MovieResponse)
    @blp.alt_response(409, response="CONFLICT")
    def patch(self, data, movie_id):
        """Change the fields given; `actor_ids` replaces the whole cast."""
        require_changes(data)
        movie = _movie(movie_id)
        apply_changes(movie, _with_cast(data))
        commit_or_conflict(DUPLICATE_MOVIE)
        return found("movie", _movie(movie_id))

    @requires_permission("delete:movies")
    @blp.response(200, DeletedSchema)
    def delete(self, movie_id):
        """Delete a movie (its cast rows go with it)."""
        return delete_and_confirm(_movie(movie_id))


@blp.route("/<id:movie_id>/actors")
class MovieActors(MethodView):
    @requires_permission("get:movies")
    @blp.arguments(ActorListArgs, location="query", error_status_code=400)
    @blp.response(200, ActorListResponse)
    def get(self, args, movie_id):
        """The cast of a movie."""
        movie = _movie(movie_id)
        return actor_page(actors_of_movie(movie.id), args)
