"""The API view base every app's endpoints stand on (kept apart from core.api, which DRF's
settings import while rest_framework.views is still loading)."""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import Serializer
from rest_framework.views import APIView

from core.actors import Actor
from core.api import CursorPagination
from core.errors import ValidationFailed


class ApiView(APIView):
    """Shared plumbing of every API view: the actor, validated input, cursor pages."""

    ordering_fields: tuple[str, ...] = ()
    ordering = "-created_at"
    # None for a view that answers one unpaged list (and never calls page()).
    pagination_class: type[CursorPagination] | None = CursorPagination

    def actor(self) -> Actor:
        return Actor.from_request(self.request, channel="api")

    def valid(
        self, serializer_class: type[Serializer[Any]], partial: bool = False
    ) -> dict[str, Any]:
        serializer = serializer_class(data=self.request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)

    def page(self, queryset: Any, serializer_class: type[Serializer[Any]]) -> Response:
        assert self.pagination_class is not None  # only views that page call this
        paginator = self.pagination_class()
        rows = paginator.paginate_queryset(queryset, self.request, view=self)
        return paginator.get_paginated_response(serializer_class(rows, many=True).data)


def choice(request: Request, name: str, choices: list[str]) -> str | None:
    """A query parameter that must be one of `choices` (400 invalid_filter otherwise)."""
    value = request.query_params.get(name)
    if value and value not in choices:
        raise ValidationFailed(
            f"{name} must be one of {', '.join(choices)}.", field=name, code="invalid_filter"
        )
    return value or None
