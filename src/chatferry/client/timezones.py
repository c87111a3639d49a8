"""An app's time zone: the one a chatferry server reveals, the one a backup recorded,
and the check that a restore does not move every day of an app into another zone.

A chatferry server names the app's zone in ``GET /stats/daily`` (an extension); a
vendor's server reveals only the UTC offset of its records' ``created_at``. A backup's
manifest keeps both (``timezone`` when the server named it, ``utc_offset`` always).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from chatferry.client.errors import ApiError, ClientError

if TYPE_CHECKING:
    from chatferry.client.http import Api
    from chatferry.client.manifest import Manifest

# Any day: the stats of one day are the cheapest answer that names the zone.
_PROBE_DAY = "2000-01-01"


def server_timezone(api: Api) -> str | None:
    """The app's IANA zone, from a chatferry server; None where the server does not say."""
    if not api.has_extensions():
        return None
    params = {"type": "users", "start_date": _PROBE_DAY, "end_date": _PROBE_DAY}
    try:
        results = api.call("GET", "/stats/daily", params=params)
    except ApiError as exc:
        if exc.status in (400, 404, 405):  # a chatferry without the extension
            return None
        raise
    zone = results.get("timezone")
    return zone if isinstance(zone, str) and _known(zone) else None


def zone_for_offset(offset: str) -> str | None:
    """``+07:00`` -> ``Etc/GMT-7`` (the tz database's fixed zones count the other way);
    ``+00:00`` -> ``UTC``; None for an offset that is not a whole number of hours."""
    sign, hours, minutes = offset[:1], offset[1:3], offset[4:6]
    if sign not in "+-" or len(offset) != 6 or not (hours + minutes).isdigit() or minutes != "00":
        return None
    if int(hours) == 0:
        return "UTC"
    return f"Etc/GMT{'-' if sign == '+' else '+'}{int(hours)}"


def backup_timezone(manifest: Manifest) -> str | None:
    """The zone of the backed-up app: its name if the server gave it, else the fixed zone
    of its offset; None for a conversion (``chatferry convert``: no app, so no zone of
    its own; its UTC days fit an app in any zone)."""
    if manifest.server.startswith("convert:"):
        return None
    if manifest.timezone and _known(manifest.timezone):
        return manifest.timezone
    return zone_for_offset(manifest.utc_offset) if manifest.utc_offset else None


@dataclass(frozen=True)
class ZoneCheck:
    source: str | None  # the backup's zone
    target: str | None  # the target app's zone
    same: bool | None  # None: one of them is unknown


def compare(manifest: Manifest, target: str | None) -> ZoneCheck:
    """Whether the two zones give every day the same bounds (now and in half a year, for
    daylight saving time); zones with other names but the same rules are the same."""
    source = backup_timezone(manifest)
    if source is None or target is None:
        return ZoneCheck(source, target, None)
    now = datetime.now(UTC)
    moments = [now, now + timedelta(days=182)]
    same = source == target or all(
        m.astimezone(ZoneInfo(source)).utcoffset() == m.astimezone(ZoneInfo(target)).utcoffset()
        for m in moments
    )
    return ZoneCheck(source, target, same)


def mismatch_error(check: ZoneCheck, app_id: str, directory: Path) -> ClientError:
    """What a restore into an app of another zone says before it starts."""
    return ClientError(
        f"the backup in {directory} is of an app in the time zone {check.source}, but the app "
        f"{app_id} is in {check.target}: restored, every day of its data would fall into other "
        "day windows. Give the app the backup's zone first: chatferry apps update "
        f"{shlex.quote(app_id)} --timezone {check.source} (or create it with: chatferry apps "
        f"create --name NAME --app-id {shlex.quote(app_id)} --timezone-from "
        f"{shlex.quote(str(directory))}), or run the restore with --ignore-timezone"
    )


def _known(zone: str) -> bool:
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True
