"""The view base of the MLflow-compatible API: MLflow's authentication, error shape and
request fields (query parameters on GET, a JSON body on POST, PATCH and DELETE)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.actors import Actor
from core.authentication import BearerTokenAuthentication
from core.edge import SafeJSONParser
from governance.mlflow_api import errors
from governance.mlflow_api.auth import BasicPasswordAuthentication


class MlflowView(APIView):
    # Basic first: when a client sends both, MLflow's client itself prefers basic.
    authentication_classes = [BasicPasswordAuthentication, BearerTokenAuthentication]
    permission_classes = [IsAuthenticated]
    parser_classes = [SafeJSONParser]
    renderer_classes = [JSONRenderer]
    schema = None  # MLflow's API is documented by MLflow; /api/schema/ describes /api/v1/

    def get_exception_handler(self) -> Callable[[Exception, dict[str, Any]], Response | None]:
        return errors.exception_handler

    def actor(self) -> Actor:
        return Actor.from_request(self.request, channel="api")

    def fields(self) -> dict[str, Any]:
        """The request's fields: the query string of a GET, else the JSON body (DELETE too)."""
        request: Request = self.request
        if request.method in ("GET", "HEAD"):
            return {k: request.query_params.getlist(k) for k in request.query_params}
        data = request.data
        if not isinstance(data, dict):
            raise errors.MlflowError(errors.BAD_REQUEST, "The body must be a JSON object.")
        return data

    def text(self, name: str, *, required: bool = True) -> str:
        """A string field (on GET, the last value given); "" when absent and not required."""
        value = self.fields().get(name)
        if isinstance(value, list) and self.request.method in ("GET", "HEAD"):
            value = value[-1] if value else None
        if value is None or value == "":
            if required:
                raise errors.invalid(f"Missing value for required parameter '{name}'.")
            return ""
        if not isinstance(value, str):
            raise errors.invalid(f"Parameter '{name}' must be a string.")
        return value

    def many(self, name: str) -> list[str]:
        """A repeated field: repeated query keys on GET, a JSON list otherwise."""
        value = self.fields().get(name)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise errors.invalid(f"Parameter '{name}' must be a list of strings.")
        return value

    def flag(self, name: str) -> bool:
        value = self.fields().get(name)
        if isinstance(value, list):
            value = value[-1] if value else None
        if value in (None, False, "false", "False"):
            return False
        if value in (True, "true", "True"):
            return True
        raise errors.invalid(f"Parameter '{name}' must be true or false.")

    def ok(self, payload: dict[str, Any] | None = None) -> Response:
        """MLflow's success: 200 with a JSON object, `{}` when there is nothing to say."""
        return Response(payload or {}, status=200)
