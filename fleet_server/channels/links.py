"""The signed links of the web survey: what a QR code (on a poster or a kiosk's screen) opens.

A link is ``/s/<station>?t=<token>``; the token is signed with itsdangerous (salt
``palaute.web-survey.v1``, the server's session secret) and names the station and, for a
kiosk's code, the kiosk. It works ``web_link_days`` days after it was made
(docs/counting.md "Web answers"). No key is on a kiosk: the server makes the links, for the
coordinators' downloads (fleet_server.channels.web_survey) and for the kiosks' configs
(fleet_server.fleet.survey_links).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from fleet_server.core.settings import Settings

SALT = "palaute.web-survey.v1"


@dataclass(frozen=True)
class LinkSigner:
    """Signs and checks the links in the QR codes."""

    serializer: URLSafeTimedSerializer
    max_age_s: int

    def sign(self, station_id: str, kiosk_id: str | None = None) -> str:
        return str(self.serializer.dumps({"s": station_id, "k": kiosk_id}))

    def check(self, token: str | None, station_id: str) -> bool:
        if not token:
            return False
        try:
            data = self.serializer.loads(token, max_age=self.max_age_s)
        except (BadSignature, SignatureExpired):
            return False
        return isinstance(data, dict) and data.get("s") == station_id

    def signed_now(self, station_id: str, kiosk_id: str | None = None) -> tuple[str, datetime]:
        """A token and when it stops working (itsdangerous stamps whole seconds of the wall clock)."""
        made = int(time.time())
        token = self.sign(station_id, kiosk_id)
        return token, datetime.fromtimestamp(made, UTC) + timedelta(seconds=self.max_age_s)


def link_signer(secret: str, settings: Settings) -> LinkSigner:
    return LinkSigner(URLSafeTimedSerializer(secret, salt=SALT), settings.web_link_days * 86400)


def survey_path(signer: LinkSigner, station_id: str, kiosk_id: str | None = None) -> str:
    return f"/s/{station_id}?t={signer.sign(station_id, kiosk_id)}"
