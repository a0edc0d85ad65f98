"""Trigger -> :class:`~sinks.message.OutgoingEmail`: unsubscribe link, rendering, headers."""

from __future__ import annotations

from schemas.models import Trigger
from sinks.message import OutgoingEmail
from sinks.render import Renderer
from sinks.settings import SinkSettings
from sinks.unsubscribe import unsubscribe_url


def compose(settings: SinkSettings, renderer: Renderer, trigger: Trigger) -> OutgoingEmail:
    """Render ``trigger`` into an email (raises :class:`~sinks.errors.TemplateError`)."""
    url = unsubscribe_url(
        settings.unsubscribe_base_url,
        settings.unsubscribe_secret.get_secret_value(),
        trigger.customer_id,
        trigger.trigger_id,
    )
    return OutgoingEmail(
        trigger=trigger,
        recipient=trigger.recipient or "",
        sender=settings.from_address,
        sender_name=settings.from_name,
        rendered=renderer.render(trigger, url),
        unsubscribe_url=url,
        unsubscribe_mailto=settings.unsubscribe_mailto,
    )
