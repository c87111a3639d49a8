"""One conversion: the export's kind, the export, the output directory."""

from __future__ import annotations

import shutil
from pathlib import Path

from chatferry.client.files import directory_lock
from chatferry.convert.builder import Options
from chatferry.convert.output import load_previous
from chatferry.convert.report import ConversionReport

KINDS = ("mattermost", "slack")


def convert(kind: str, export: Path, out: Path, options: Options) -> ConversionReport:
    """Converts ``export``; a failure leaves nothing behind in a directory it created."""
    from chatferry.convert.mattermost import convert_mattermost
    from chatferry.convert.slack import convert_slack

    load_previous(out, f"convert:{kind}")  # refuses a directory holding something else
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        with directory_lock(out, "conversion"):  # one run at a time writes the directory
            if kind == "mattermost":
                return convert_mattermost(export, out, options)
            return convert_slack(export, out, options)
    except BaseException:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
