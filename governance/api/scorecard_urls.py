"""Routes appended to the app's urls module (same namespace): the maturity scorecard's API."""

from django.urls import URLPattern, path

import core.converters  # noqa: F401  (registers "mname")
from governance.api import scorecard_views as sv

urlpatterns: list[URLPattern] = [
    path("scorecard/", sv.ScorecardView.as_view(), name="scorecard"),
    path("scorecard/trend/", sv.TrendView.as_view(), name="scorecard-trend"),
    path("scorecard/export/", sv.ExportView.as_view(), name="scorecard-export"),
    path("scorecard/teams/<int:team_id>/", sv.TeamScorecardView.as_view(), name="scorecard-team"),
    path("scorecard/models/<mname:name>/", sv.ModelScorecardView.as_view(), name="scorecard-model"),
]
