"""Every error the fleet server raises, under one base.

Each kind also inherits the builtin it stands for (as gpiozero's ``exc.py``
does), so ``except ValueError`` / ``except RuntimeError`` keep catching it;
catch ``FleetServerError`` for "anything the server refused or could not do".
Grouped by the package that raises them.
"""

from __future__ import annotations


class FleetServerError(Exception):
    """Base of every fleet server error."""


# ------------------------------------------------------------------ core


class SettingsError(FleetServerError, ValueError):
    """Settings that cannot be used; the message names each bad setting."""


# ------------------------------------------------------------------ auth


class WeakPasswordError(FleetServerError, ValueError):
    """A password the policy refuses; the message says why."""


class AuthSetupError(FleetServerError, ValueError):
    """A user or token that cannot be created as asked; the message says why and what to do."""


class LoginRequired(FleetServerError):
    """Raised by page dependencies; the app turns it into a redirect to /login."""

    def __init__(self, next_url: str):
        self.next_url = next_url


# ------------------------------------------------------------------ results


class UnknownStation(FleetServerError, LookupError):
    """No station with this id."""

    def __init__(self, station_id: str) -> None:
        super().__init__(f"no station {station_id!r}")
        self.station_id = station_id


class BadPeriod(FleetServerError, ValueError):
    """A results period that cannot be shown; the message says why."""


# ------------------------------------------------------------------ fleet


class ProvisioningError(FleetServerError, ValueError):
    """A registry operation that cannot be done; the message says why and what to do."""


class ConfigInvalid(FleetServerError, ValueError):
    """A config the contract refuses; ``problems`` lists each field and why."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class NoteInvalid(FleetServerError, ValueError):
    """A "you said, we did" note that cannot be saved; the message says why."""


class SubscriptionInvalid(FleetServerError, ValueError):
    """A monthly report subscription that cannot be saved as given; the message says what to fix."""


class RolloutError(FleetServerError, ValueError):
    """A rollout that cannot be created or changed; the message says why."""


class ReleaseError(FleetServerError, ValueError):
    """A release that cannot be built, signed, added or withdrawn; the message says why."""


class PublishError(FleetServerError, RuntimeError):
    """The broker could not be reached or did not acknowledge in time."""


class BrokerAuthError(FleetServerError, RuntimeError):
    """The broker files could not be written or the broker could not be told to reload."""


class WheelhouseError(FleetServerError, RuntimeError):
    """The wheelhouse cannot be built; the message says which step failed and pip's last lines."""


# ------------------------------------------------------------------ channels


class ChannelRefused(FleetServerError, ValueError):
    """A whole import request or web form is unusable (reason codes as the MQTT ingest's: bad_json,
    oversize, unsupported_version, schema); nothing of it was stored, and it was dead-lettered."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


class CommentsForbidden(FleetServerError, PermissionError):
    """Open comments are read and exported by coordinators only, and exported only when confirmed."""


class BadQuestionnaire(FleetServerError, ValueError):
    """A questionnaire form with a value outside an item's scale (the message names the item)."""


class BadCsv(FleetServerError, ValueError):
    """The file cannot be read as an answers CSV (the message names the problem)."""


class PdfUnavailable(FleetServerError, RuntimeError):
    """WeasyPrint cannot load the system's Pango, so no PDF can be made (the pages still work)."""
