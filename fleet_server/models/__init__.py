"""Every table of the fleet server, importable from one place.

Tables only: columns, constraints and the small properties that read a row. The
rules that fill and read them live with their feature (ingest, results, fleet,
auth). Importing this package registers every table on ``Base.metadata``, which
Alembic and the schema test rely on.
"""

from fleet_server.models.auth import ApiToken, LoginFailure, User
from fleet_server.models.base import SLUG_LEN, Base, BigId, UtcDateTime
from fleet_server.models.channels import WebAnswerLimit
from fleet_server.models.feedback import (
    DEVICE_STATES,
    MAX_STORED_PAYLOAD,
    DeadLetter,
    Device,
    DevicePresence,
    FeedbackEvent,
    Station,
)
from fleet_server.models.fleet import (
    COMMAND_NAMES,
    Alert,
    AlertDelivery,
    BrokerBridge,
    DeviceCommand,
    DeviceCredential,
    GapCheck,
    SeqGap,
    StationConfigVersion,
)
from fleet_server.models.groups import GROUP_KINDS, StationGroup
from fleet_server.models.health import HealthProbe
from fleet_server.models.notes import StationNote
from fleet_server.models.questionnaires import (
    QuestionnaireAnswer,
    QuestionnaireResponse,
    StationWebSettings,
    WebComment,
)
from fleet_server.models.releases import Release, ReleaseFile, Rollout, RolloutDevice
from fleet_server.models.reports import ReportDelivery, ReportSubscription
from fleet_server.models.rollups import ChannelDay, ChannelHour, FollowupHour, StationDay, StationHour
from fleet_server.models.station_edits import StationEdit

__all__ = [
    "COMMAND_NAMES",
    "DEVICE_STATES",
    "GROUP_KINDS",
    "MAX_STORED_PAYLOAD",
    "SLUG_LEN",
    "Alert",
    "AlertDelivery",
    "ApiToken",
    "Base",
    "BigId",
    "BrokerBridge",
    "ChannelDay",
    "ChannelHour",
    "DeadLetter",
    "Device",
    "DeviceCommand",
    "DeviceCredential",
    "DevicePresence",
    "FeedbackEvent",
    "FollowupHour",
    "GapCheck",
    "HealthProbe",
    "LoginFailure",
    "QuestionnaireAnswer",
    "QuestionnaireResponse",
    "Release",
    "ReleaseFile",
    "ReportDelivery",
    "ReportSubscription",
    "Rollout",
    "RolloutDevice",
    "SeqGap",
    "Station",
    "StationConfigVersion",
    "StationDay",
    "StationEdit",
    "StationGroup",
    "StationHour",
    "StationNote",
    "StationWebSettings",
    "User",
    "UtcDateTime",
    "WebAnswerLimit",
    "WebComment",
]
