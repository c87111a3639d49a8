"""``POST /webhooks`` as the API receives it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class WebhookRequest(BaseModel):
    """A URL to POST to, and the events it wants."""

    model_config = ConfigDict(extra="forbid", title="WebhookRequest")

    url: str = Field(
        max_length=2000, description="An https:// URL on a public host.", examples=["https://x"]
    )
    events: list[str] = Field(
        min_length=1,
        max_length=6,
        description=(
            "Any of export.finished, export.failed, export.cancelled, import.finished, "
            "import.failed, ping."
        ),
    )
    description: str = Field(default="", max_length=500)
