"""The meeting room page: pre-join screen, then the live room run by web/static/js/room.js."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import select

from meetings import i18n
from meetings.accounts.permissions import Permission, allowed
from meetings.directory.models import Person, Unit, UnitKind
from meetings.errors import N_, Forbidden
from meetings.minutes.models import ENTRY_KIND_LABELS, ENTRY_STATUS_LABELS
from meetings.schedule import service
from meetings.schedule.links import join_link_holder
from web import keys
from web.access import needs
from web.forms import int_param
from web.render import render

routes = web.RouteTableDef()

# Every text the room's JavaScript shows, by key; rendered translated into the page as JSON.
STRINGS: dict[str, str] = {
    "join": N_("Join now"),
    "joining": N_("Joining…"),
    "microphone": N_("Microphone"),
    "camera": N_("Camera"),
    "mute": N_("Mute"),
    "unmute": N_("Unmute"),
    "camera_off": N_("Stop camera"),
    "camera_on": N_("Start camera"),
    "raise_hand": N_("Raise hand"),
    "lower_hand": N_("Lower hand"),
    "leave": N_("Leave"),
    "chat": N_("Chat"),
    "send": N_("Send"),
    "message": N_("Message"),
    "participants": N_("Participants"),
    "you": N_("you"),
    "muted": N_("muted"),
    "hand_raised": N_("hand raised"),
    "no_unit": N_("Other"),
    "waiting": N_("You are waiting in the lobby until a moderator lets you in."),
    "left": N_("You left the meeting."),
    "ended": N_("The meeting has ended."),
    "closed": N_("The connection to the meeting was closed."),
    # The screen shown once the meeting is over for this page: a title and what to do next.
    "over_left": N_("You have left the meeting"),
    "over_left_next": N_("You can join again while the meeting is open."),
    "over_removed": N_("You were removed from the meeting"),
    "over_removed_next": N_(
        "If you ask to join again, you will wait in the lobby until a moderator lets you in."
    ),
    "over_ended": N_("The meeting has ended"),
    "over_ended_next": N_("The minutes are sent by email once they are published."),
    "over_denied": N_("You were not let in"),
    "over_denied_next": N_("Contact the chair of the meeting if you should take part."),
    "over_replaced": N_("The meeting continues in another window"),
    "over_replaced_next": N_("You joined from another window or device: continue there, or join here again."),
    "over_closed": N_("You are no longer in the meeting"),
    "over_closed_next": N_("You can try to join again."),
    "rejoin": N_("Join again"),
    "rejoin_lobby": N_("Ask to join again"),
    "no_devices": N_("Camera or microphone not available: you can still join and listen."),
    "devices_slow": N_(
        "The browser has not opened your camera and microphone yet: you can join now to listen;"
        " they are added as soon as they are ready."
    ),
    "speaking": N_("speaking"),
    "shortcuts": N_("Shortcuts: M microphone, V camera, H hand, S statistics."),
    "chair_panel": N_("Chair's panel"),
    "queue": N_("Speakers' queue"),
    "queue_empty": N_("No hands raised."),
    "give_floor": N_("Give the floor"),
    "mute_person": N_("Mute"),
    "remove": N_("Remove from meeting"),
    "mute_all": N_("Mute all"),
    "lower_hands": N_("Lower all hands"),
    "lock": N_("Lock the meeting"),
    "unlock": N_("Unlock the meeting"),
    "locked": N_("The meeting is locked: newcomers wait in the lobby."),
    "end": N_("End the meeting for all"),
    "end_confirm": N_("End the meeting for everyone?"),
    "lobby": N_("Lobby"),
    "lobby_empty": N_("Nobody is waiting."),
    "admit": N_("Admit"),
    "deny": N_("Deny"),
    "reconnecting": N_("Reconnecting…"),
    "share_screen": N_("Share screen"),
    "stop_share": N_("Stop sharing"),
    "screen": N_("Screen"),
    "sharing": N_("sharing the screen"),
    "screen_failed": N_("The screen could not be shared."),
    "audio_only_on": N_("Audio only"),
    "audio_only_off": N_("Show video"),
    "speaker_view": N_("Speaker view"),
    "grid_view": N_("Grid view"),
    "camera_is_off": N_("camera off"),
    "quality_good": N_("Good connection"),
    "quality_fair": N_("Fair connection"),
    "quality_poor": N_("Poor connection"),
    "quality_unknown": N_("Measuring the connection…"),
    # Weak links (#16): what the forwarding unit does with each video, and the stats overlay.
    "video_paused": N_("Weak connection — video paused"),
    "layer_audio_only": N_("audio only"),
    "layer_receives": N_("Video received now"),
    "stats": N_("Statistics"),
    "stats_title": N_("Connection statistics"),
    "stats_estimate": N_("Estimate"),
    "stats_receive": N_("receive"),
    "stats_send": N_("send"),
    "stats_loss": N_("loss"),
    "stats_rtt": N_("round trip"),
    "stats_layer": N_("layer"),
    "stats_fps": N_("frames/s"),
    "stats_freezes": N_("freezes"),
    "stats_jitter": N_("jitter buffer"),
    "stats_no_video": N_("No video received."),
    "stats_sending": N_("Camera layers sent"),
    "stats_off": N_("off"),
    "minutes": N_("Minutes"),
    "minutes_show": N_("Show the minutes"),
    "minutes_hide": N_("Hide the minutes"),
    "minutes_editor": N_("Open the minutes editor"),
    "minutes_empty": N_("Nothing recorded yet."),
    "minutes_unavailable": N_("The minutes are not shown here."),
    "minutes_sign_in": N_("Sign in to follow the minutes here."),
    "carried": N_("Carried over from earlier meetings"),
    # The control bar's short labels and the side panels.
    "chair_short": N_("Chair"),
    "close": N_("Close"),
    "hands_count": N_("hands raised"),
    "unread": N_("unread"),
    # The chair's roll call by unit.
    "rollcall": N_("Roll call"),
    "rollcall_present": N_("present"),
    "rollcall_absent": N_("not yet"),
    "rollcall_weak": N_("weak link"),
    "rollcall_audio": N_("audio only"),
    "lobby_waiting": N_("waiting in the lobby"),
    # Screens of their own: connecting, reconnecting, the lobby, not started yet.
    "status_connecting": N_("Connecting to the meeting…"),
    "status_connecting_next": N_(
        "This takes a few seconds. Allow the camera and microphone if the browser asks."
    ),
    "status_reconnecting": N_("The connection was interrupted"),
    "status_reconnecting_next": N_(
        "Stay on this page: it comes back by itself, with your microphone, camera and hand as they were."
    ),
    "retry_server": N_("Reconnecting to the meeting server"),
    "retry_media": N_("Restoring the sound and picture"),
    "attempt": N_("attempt"),
    "status_lobby": N_("Waiting for the chair to admit you"),
    "status_lobby_next": N_("Keep this page open: the meeting opens here as soon as you are admitted."),
    "status_not-started": N_("The meeting has not started yet"),
    "status_not-started_next": N_("Come back at the opening time, or try again then."),
    "try_again": N_("Try again"),
    "cancel": N_("Cancel"),
    "back_home": N_("Back to the home page"),
}


def room_strings() -> dict[str, str]:
    """STRINGS in the request's language, with the minutes' entry kinds (kind_issue, …)."""
    strings = {key: i18n.gettext(text) for key, text in STRINGS.items()}
    strings.update({f"kind_{k.value}": i18n.gettext(v) for k, v in ENTRY_KIND_LABELS.items()})
    strings.update({f"entry_{k.value}": i18n.gettext(v) for k, v in ENTRY_STATUS_LABELS.items()})
    return strings


def minutes_config(request: web.Request, occurrence_id: int, signed_in: Person | None) -> dict[str, Any]:
    """Where the room's read-only minutes panel loads from (signed-in people only: the API and
    its socket go by the session), and whether to offer the secretary's editor."""
    if signed_in is None:
        return {"api": "", "editor": False}
    api = request.app.router["api_occurrence_minutes"].url_for(id=str(occurrence_id))
    return {"api": str(api), "editor": allowed(signed_in.role, Permission.MINUTES_EDIT)}


@routes.get("/rooms/{id}", name="room")
@needs(Permission.PUBLIC)  # a personal join link (?token=) opens it without a password
async def room_page(request: web.Request) -> web.StreamResponse:
    """One occurrence's meeting room; who is seated is decided by the signaling socket."""
    occurrence_id = int_param(request)
    token = request.query.get("token", "")
    reader: Person | None = None  # signed in (not by a join link): reads the minutes in the room
    async with request.app[keys.DB]() as db:
        if token:
            occ = await service.get_occurrence(db, occurrence_id)
            _, person = await join_link_holder(db, request.app[keys.SETTINGS].secret_key, token, occ)
        else:
            signed_in = request[keys.PERSON]
            if signed_in is None:
                login = request.app.router["login"].url_for().with_query(next=request.path_qs)
                raise web.HTTPSeeOther(login)
            if not allowed(signed_in.role, Permission.MEETINGS_READ):
                raise Forbidden(N_("You may not open this page."))
            person = reader = signed_in
            occ = await service.get_occurrence(db, occurrence_id)
        series = await service.get_series(db, occ.series_id)
        units = list(await db.scalars(select(Unit)))
        invited = await service.invited_units(db, series)
    unit = next((u for u in units if u.id == person.unit_id), None)
    config: dict[str, Any] = {
        "occurrence": occ.id,
        "token": token,
        "ws": str(request.app.router["room_ws"].url_for(id=str(occ.id))),
        "name": person.name,
        "personId": person.id,
        "unit": unit.name if unit else "",
        # Centres join muted by default (a weak link, and sixty open microphones are noise).
        "mutedByDefault": unit is not None and unit.kind is UnitKind.CENTRE,
        "units": {str(u.id): {"name": u.name, "centre": u.kind is UnitKind.CENTRE} for u in units},
        "minutes": minutes_config(request, occ.id, reader),
        # The chair's roll call: the invited units, present or not yet.
        "invited": [u.id for u in invited],
        # Before it, a refused join means "not started yet" rather than "ended".
        "start": occ.start.isoformat(),
        # The pre-join screen starts the peer connection (docs/signaling.md, "Opening"); it makes
        # a new one when the TURN credentials are half way to expiring.
        "iceServers": request.app[keys.MEDIA].ice_servers(person.id),
        "iceTtl": request.app[keys.SETTINGS].turn_ttl_seconds,
    }
    return render(
        request,
        "room/room.html",
        {
            "series": series,
            "occ": occ,
            "config": config,
            "strings": room_strings(),
            "unit": unit,
            "guest": person,
        },
    )
