"""One outgoing email: the rendered parts plus the headers every send carries.

Headers set on every message:
- ``Message-ID``: derived from the trigger id only, so a retry (even after a crash) carries the
  same id and ESPs / receiving servers that deduplicate on it see one message.
- ``List-Unsubscribe`` (one-click HTTPS link and mailto) and
  ``List-Unsubscribe-Post: List-Unsubscribe=One-Click`` (RFC 8058).
- ``X-Personaflow-Trigger``: the trigger id (an opaque id, no personal data).
"""

from __future__ import annotations

import binascii
import hashlib
from dataclasses import dataclass, field
from email.header import Header
from email.message import EmailMessage
from email.policy import default as default_policy
from email.utils import formataddr, formatdate

from schemas.models import Trigger
from sinks.render import RenderedEmail

POLICY = default_policy.clone(max_line_length=998)
"""RFC 5322 line limit: long List-Unsubscribe URLs stay unencoded on one line."""


def message_id(trigger_id: str, domain: str) -> str:
    """A stable RFC 5322 Message-ID for ``trigger_id``."""
    digest = hashlib.blake2b(trigger_id.encode(), digest_size=16).hexdigest()
    return f"<{digest}@{domain}>"


@dataclass(frozen=True, slots=True)
class OutgoingEmail:
    """What an ESP adapter sends. ``recipient`` is personal data: never log it."""

    trigger: Trigger
    recipient: str
    sender: str
    sender_name: str
    rendered: RenderedEmail
    unsubscribe_url: str
    unsubscribe_mailto: str
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def trigger_id(self) -> str:
        return self.trigger.trigger_id

    @property
    def message_id(self) -> str:
        domain = self.sender.rpartition("@")[2] or "personaflow.local"
        return message_id(self.trigger.trigger_id, domain)

    def list_headers(self) -> dict[str, str]:
        """Message-ID, List-Unsubscribe(-Post) and the trigger header."""
        return {
            "Message-ID": self.message_id,
            "List-Unsubscribe": f"<{self.unsubscribe_url}>, <mailto:{self.unsubscribe_mailto}"
            f"?subject=unsubscribe>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "X-Personaflow-Trigger": self.trigger.trigger_id,
            **self.headers,
        }

    def to_bytes(self) -> bytes:
        """The message as RFC 5322 bytes (multipart/alternative, quoted-printable UTF-8
        parts), built directly: the :mod:`email` package takes milliseconds per message."""
        boundary = "pf-" + hashlib.blake2b(self.trigger.trigger_id.encode(),
                                           digest_size=12).hexdigest()
        head = {
            "From": formataddr((self.sender_name, self.sender)),
            "To": self.recipient,
            "Subject": _header(self.rendered.subject),
            "Date": formatdate(usegmt=True),
            **self.list_headers(),
            "MIME-Version": "1.0",
            "Content-Type": f'multipart/alternative; boundary="{boundary}"',
        }
        lines = [f"{name}: {_no_newlines(value)}" for name, value in head.items()]
        out = ["\r\n".join(lines).encode(), b"\r\n\r\n"]
        for subtype, body in (("plain", self.rendered.text), ("html", self.rendered.html)):
            out.append(
                f'--{boundary}\r\nContent-Type: text/{subtype}; charset="utf-8"\r\n'
                "Content-Transfer-Encoding: quoted-printable\r\n\r\n".encode()
            )
            out.append(_qp(body))
            out.append(b"\r\n")
        out.append(f"--{boundary}--\r\n".encode())
        return b"".join(out)

    def to_mime(self) -> EmailMessage:
        """The MIME message (multipart/alternative: text then HTML)."""
        msg = EmailMessage(policy=POLICY)
        msg["From"] = formataddr((self.sender_name, self.sender))
        msg["To"] = self.recipient
        msg["Subject"] = self.rendered.subject
        for name, value in self.list_headers().items():
            msg[name] = value
        msg.set_content(self.rendered.text)
        msg.add_alternative(self.rendered.html, subtype="html")
        return msg


def _header(value: str) -> str:
    """A header value: as is when ASCII, else RFC 2047 encoded (UTF-8)."""
    if value.isascii():
        return value
    return Header(value, "utf-8").encode()


def _qp(body: str) -> bytes:
    """Quoted-printable UTF-8 with CRLF line ends (lines of at most 76 characters)."""
    text = body.replace("\r\n", "\n").replace("\r", "\n").encode()
    return binascii.b2a_qp(text, istext=True).replace(b"\n", b"\r\n")


def _no_newlines(value: str) -> str:
    """Header values never carry line breaks (no header injection)."""
    return value.replace("\r", " ").replace("\n", " ")
