"""The software-rollout section of the devices page and its pause / resume / abort buttons.

The page shows the recent rollouts (fleet_server.fleet.rollouts.view): progress per
wave and each failed kiosk with the reason its status gave. Only IT may control a
rollout; the form posts with the session's CSRF token, like the command buttons.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request, status
from fastapi.responses import RedirectResponse

from fleet_server.api.deps import SessionDep, SettingsDep
from fleet_server.api.fleet import publisher
from fleet_server.auth.deps import CsrfChecked, role_refused
from fleet_server.core import i18n
from fleet_server.core.i18n import N_
from fleet_server.fleet import rollouts

router = APIRouter(include_in_schema=False)

SKIP_REASONS = (N_("retired"), N_("already on this version"),
                N_("this kiosk has no updater (it reports no update_state): re-provision it"))
"""Why a kiosk was left out, as fleet_server.fleet.rollouts words it; the page translates them."""


def rollout_views(session) -> list[rollouts.RolloutView]:
    return [rollouts.view(session, r) for r in rollouts.recent_rollouts(session, limit=3)]


@router.post("/rollouts/{rollout_id}/control")
def rollout_control(rollout_id: int, request: Request, session: SessionDep, settings: SettingsDep,
                    principal: CsrfChecked, action: Annotated[str, Form()]):
    if not principal.may_manage_devices:
        raise role_refused(principal, "manage rollouts")
    try:
        if action == "pause":
            rollouts.pause(session, rollout_id, f"paused by {principal.name}")
        elif action == "resume":
            rollouts.resume(session, rollout_id)
        elif action == "abort":
            rollouts.abort(session, rollout_id, f"aborted by {principal.name}", settings=settings,
                           publisher=publisher(request))
        else:
            raise HTTPException(422, f"unknown action {action!r} (pause, resume, abort)")
    except KeyError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, i18n.gettext("no rollout {id}").format(id=rollout_id)) from None
    except rollouts.RolloutError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    session.commit()
    return RedirectResponse("/devices#rollouts", status_code=status.HTTP_303_SEE_OTHER)
