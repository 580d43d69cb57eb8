"""The mail provider's bounce and complaint webhook: `POST /api/email/bounces/`.

Authenticated like every integration: an integration key (`Authorization: Bearer`) with
the `email_bounces` scope, which the provider sends as a header; the key acts for its own
organization only, so a leaked key marks nobody else's clients. A request without a key
is 401, a key without the scope 403.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core import scopes
from core.scope import organization_scope
from mailing.serializers import BounceResultSerializer, BounceSerializer
from mailing.services.contacts import clients_email_bounced


class EmailBounceView(APIView):
    required_scopes = {"POST": scopes.EMAIL_BOUNCES}

    @extend_schema(
        request=BounceSerializer,
        responses={200: BounceResultSerializer},
        summary="Bounces and complaints from the mail provider",
    )
    def post(self, request: Request) -> Response:
        body = BounceSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        organization = organization_scope(request, slug=data.get("organization"), required=True)
        ids = clients_email_bounced(
            organization=organization, addresses=data["recipients"], kind=data["type"]
        )
        return Response(BounceResultSerializer({"type": data["type"], "clients": ids}).data)
