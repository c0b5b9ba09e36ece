"""Station groups: wellbeing county -> municipality or service area -> station (migration 1200)."""

from __future__ import annotations

from sqlalchemy import CheckConstraint, ForeignKey, String, false
from sqlalchemy.orm import Mapped, mapped_column

from fleet_server.models.base import SLUG_LEN, Base, Named

GROUP_KINDS = ("county", "municipality", "area")


class StationGroup(Named, Base):
    """A node of the hierarchy; stations hang from the lowest level (``stations.group_id``)."""

    __tablename__ = "station_groups"
    __table_args__ = (CheckConstraint("kind IN ('county', 'municipality', 'area')", name="kind"),)

    id: Mapped[str] = mapped_column(String(SLUG_LEN), primary_key=True)
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("station_groups.id"))
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    name_fi: Mapped[str | None] = mapped_column(String(200))
    name_sv: Mapped[str | None] = mapped_column(String(200))
    name_en: Mapped[str | None] = mapped_column(String(200))
    public_page: Mapped[bool] = mapped_column(
        default=False, server_default=false(), doc="its results page is open to everyone; off by default")
