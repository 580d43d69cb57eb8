"""A template's texts per language (issue 16): PUT / DELETE
`/api/templates/<pk>/variants/<language>/`.

Same access as the template itself (TemplateDetailView: the template must be visible to
the principal; API keys need the admin scope to write). The variants are listed in the
template's representation (`variants`).
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core import scopes
from mailing import selectors
from mailing.serializers import TemplateVariantSerializer, TemplateVariantWriteSerializer
from mailing.services.variants import (
    template_variant_delete,
    template_variant_get,
    template_variant_save,
)


class TemplateVariantView(APIView):
    required_scopes = {"PUT": scopes.ADMIN, "DELETE": scopes.ADMIN}

    @extend_schema(request=TemplateVariantWriteSerializer, responses=TemplateVariantSerializer)
    def put(self, request: Request, pk: int, language: str) -> Response:
        template = selectors.template_get_for_principal(principal=request.user, pk=pk)
        body = TemplateVariantWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        variant = template_variant_save(template=template, language=language, **body.validated_data)
        return Response(TemplateVariantSerializer(variant).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pk: int, language: str) -> Response:
        template = selectors.template_get_for_principal(principal=request.user, pk=pk)
        template_variant_delete(variant=template_variant_get(template=template, language=language))
        return Response(status=status.HTTP_204_NO_CONTENT)
