"""Routes appended to the app's urls module (same namespace): the maturity scorecard's pages."""

from django.urls import URLPattern, path

import core.converters  # noqa: F401  (registers "mname")
from governance import scorecard_views

urlpatterns: list[URLPattern] = [
    path("scorecard/", scorecard_views.scorecard_home, name="scorecard"),
    path("scorecard/teams/<int:team_id>/", scorecard_views.scorecard_team, name="scorecard-team"),
    path("models/<mname:name>/scorecard/", scorecard_views.model_scorecard, name="model-scorecard"),
    path(
        "models/<mname:name>/access/review/",
        scorecard_views.access_review,
        name="model-access-review",
    ),
]
