"""Downloads of message files: the authorized view and the signed link (chat/files.py)."""

from __future__ import annotations

from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.views import APIView

from chat import files, selectors
from core import scopes

_FILE = OpenApiResponse(
    OpenApiTypes.BINARY,
    description="The file: images inline, anything else as an attachment with its name.",
)


class MessageFileView(APIView):
    # core/permissions.py: an API key needs `read` (a session is its user's memberships).
    required_scopes = {"GET": scopes.READ}

    @extend_schema(
        responses={(200, "application/octet-stream"): _FILE},
        summary="A message's file (members of its organization)",
    )
    def get(self, request: Request, uuid: str) -> FileResponse:
        message = selectors.message_get_for_principal(principal=request.user, uuid=uuid)
        return files.file_response(message)


class FileLinkView(APIView):
    # The signature is the credential: a link reaches a client who has no account. Any
    # Authorization header is ignored rather than checked.
    authentication_classes = []
    permission_classes = [AllowAny]
    # Per client address, but not ANON_RATE: a mailing's recipients open their links
    # together, many behind one carrier NAT address (core/throttles.py, FILE_LINK_RATE).
    throttle_scope = "file_links"

    @extend_schema(
        auth=[],
        responses={(200, "application/octet-stream"): _FILE},
        summary="A message's file through a signed, expiring link (sent to the client)",
    )
    def get(self, request: Request, token: str) -> FileResponse:
        uuid = files.file_link_message_uuid(token)
        return files.file_response(selectors.message_get_for_link(uuid=uuid))
