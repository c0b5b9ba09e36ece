"""The web survey link in each kiosk's config: made, put in, and renewed before it expires.

A kiosk shows its station's web survey as a QR code on the thank-you and idle screens
(kiosk.ui). It cannot sign a link itself (no key is on a kiosk), so the server puts a signed
one into the kiosk's config (``survey_link``: url and expiry) when ``web_public_url`` is set and
the kiosk's status says it understands the field (``accepts``; older kiosks refuse a config
with a field they do not know). The kiosk reports the expiry of the link it shows
(``survey_link_expires``); the fleet loop sends a fresh config to every online kiosk whose link
has less than half of its life left, or none (``renew_links``), so a code scanned at the
kiosk works for at least half of ``web_link_days`` at home.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fleet_server.channels.links import LinkSigner, link_signer
from fleet_server.core.settings import Settings
from palaute_wire.contract import SurveyLink

FEATURE = "survey_link"
"""The name a kiosk lists in its status ``accepts`` when it can show the link."""


@dataclass(frozen=True)
class SurveyLinks:
    """Makes the kiosks' links: ``base_url`` + /s/<station>?t=<token for station and kiosk>."""

    base_url: str
    signer: LinkSigner

    @property
    def lifetime(self) -> timedelta:
        return timedelta(seconds=self.signer.max_age_s)

    def link(self, station_id: str, device_id: str) -> SurveyLink:
        token, expires = self.signer.signed_now(station_id, device_id)
        return SurveyLink(url=f"{self.base_url.rstrip('/')}/s/{station_id}?t={token}", expires=expires)

    def needs_new(self, expires: datetime | None, now: datetime) -> bool:
        """A kiosk showing a link that expires at ``expires`` (None: none) gets a new one now."""
        return expires is None or expires - now < self.lifetime / 2


def survey_links_from(settings: Settings, signer: LinkSigner | None = None) -> SurveyLinks | None:
    """The link maker for this server; None when kiosks show no code (no ``web_public_url``).

    ``signer`` is the web app's (fleet_server.channels.web_survey), so the pages accept what the
    kiosks show; without one a signer is made from ``session_secret``, and without that (a
    development server's throwaway secret is the app's alone) there are no kiosk links."""
    if not settings.web_public_url:
        return None
    if signer is None:
        if settings.session_secret is None:
            return None
        signer = link_signer(settings.session_secret.get_secret_value(), settings)
    return SurveyLinks(settings.web_public_url, signer)


def accepts_link(last_status: dict[str, Any] | None) -> bool:
    return FEATURE in ((last_status or {}).get("accepts") or ())


def shown_expiry(last_status: dict[str, Any] | None) -> datetime | None:
    """When the link the kiosk last reported showing expires (None: it shows none, or said nothing)."""
    value = (last_status or {}).get("survey_link_expires")
    if not value:
        return None
    try:
        when = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
