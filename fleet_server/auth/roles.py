"""The roles and what each may see or do: the one place permissions are decided.

- coordinator: every station's results, exports, publishes "you said, we did" notes,
  and device status (to tell a quiet week from a dead kiosk); the only role that reads
  the web page's open comments and sets what a station's web page asks;
- staff: their own station's results and device status;
- it: devices, provisioning and dead letters of every station (no results);
- admin: users and API tokens (no results);
- import: API tokens only, for a phone or SMS survey system: delivers answers
  (POST /api/v1/answers), sees nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    COORDINATOR = "coordinator"
    STAFF = "staff"
    IT = "it"
    ADMIN = "admin"
    IMPORT = "import"


ROLES = tuple(r.value for r in Role)
USER_ROLES = tuple(r.value for r in Role if r is not Role.IMPORT)
"""The roles a person may have; ``import`` is for API tokens only."""


@dataclass(frozen=True)
class Principal:
    """Who is asking: a signed-in user or an API token."""

    kind: str  # "user" | "token"
    id: int
    name: str
    role: Role
    station_id: str | None = None
    csrf: str | None = None
    """The session's CSRF token (users signed in with a cookie); None for bearer tokens."""
    group_stations: frozenset[str] | None = None
    """Staff given a group (``users.group_id``): every station under it, instead of one ``station_id``."""

    @property
    def own_stations(self) -> list[str]:
        """The stations staff belong to (one, or every station of their group); [] for other roles."""
        if self.role is not Role.STAFF:
            return []
        if self.group_stations is not None:
            return sorted(self.group_stations)
        return [self.station_id] if self.station_id else []

    def _own(self, station_id: str) -> bool:
        return self.role is Role.STAFF and station_id in self.own_stations

    # ------------------------------------------------------------------ results

    @property
    def sees_all_results(self) -> bool:
        return self.role is Role.COORDINATOR

    def may_view_results(self, station_id: str) -> bool:
        if self.role is Role.COORDINATOR:
            return True
        return self._own(station_id)

    @property
    def may_view_any_results(self) -> bool:
        return self.role in (Role.COORDINATOR, Role.STAFF)

    def may_view_group(self, station_ids: Sequence[str]) -> bool:
        """A group's figures as a whole (its monthly report), given the stations under it:
        coordinators any group; staff only a group every station of which is theirs."""
        if self.sees_all_results:
            return True
        return bool(station_ids) and all(self.may_view_results(s) for s in station_ids)

    def result_stations(self, all_ids: list[str]) -> list[str]:
        """The subset of ``all_ids`` whose results this principal may see."""
        return [s for s in all_ids if self.may_view_results(s)]

    # ------------------------------------------------------------------ devices

    def may_view_devices(self, station_id: str | None = None) -> bool:
        if self.role in (Role.IT, Role.COORDINATOR):
            return True
        return self.role is Role.STAFF and (station_id is None or self._own(station_id))

    @property
    def sees_all_devices(self) -> bool:
        return self.role in (Role.IT, Role.COORDINATOR)

    @property
    def may_manage_devices(self) -> bool:
        return self.role is Role.IT

    # ------------------------------------------------------------------ the rest

    @property
    def may_publish_notes(self) -> bool:
        return self.role is Role.COORDINATOR

    @property
    def may_manage_users(self) -> bool:
        return self.role is Role.ADMIN

    @property
    def may_import_answers(self) -> bool:
        return self.role is Role.IMPORT

    @property
    def may_read_comments(self) -> bool:
        """Open comments (masked) are for coordinators only: not staff, not tokens of other roles."""
        return self.role is Role.COORDINATOR

    @property
    def may_set_web_survey(self) -> bool:
        """Whether a station's web page asks the national questionnaire and offers a comment."""
        return self.role is Role.COORDINATOR
