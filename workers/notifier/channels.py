"""Alert channels: their apprise URLs (secrets, from the environment or an owner-only file).

A channel's URLs come from ``OBSERVER_NOTIFY_<NAME>_URLS`` (space-separated) or else the
``[channels]`` table of ``[notifier] credentials_file`` (owner-only TOML). Each URL is one
*target* with its own queue and retries, so a dead e-mail server never holds Slack back; it
is named for its channel (``ops``, ``ops.2`` for the second URL). Every URL, and every part
that can hold a secret, is registered for masking before anything is logged.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import apprise
import msgspec

from observer.alerts.settings import ChannelSettings, NotifierSettings
from observer.alerts.states import SEVERITY_RANK
from observer.errors import ConfigError
from observer.kis.credentials import read_owner_only
from observer.process.logs import mask_secrets, register_secret

__all__ = ["ChannelTarget", "channel_urls", "env_name", "targets_from", "url_secrets"]

_NOTIFY_TYPE = {
    "info": apprise.NotifyType.INFO,
    "warning": apprise.NotifyType.WARNING,
    "error": apprise.NotifyType.FAILURE,
    "critical": apprise.NotifyType.FAILURE,
}
_PASSWORD_OPTIONS = ("pass", "password", "pwd")  # apprise's spellings of a URL option
MAX_ERROR = 2000  # characters of a failure's text kept in its delivery event


def env_name(channel: str) -> str:
    """The variable holding a channel's URLs: ``OBSERVER_NOTIFY_<NAME>_URLS``."""
    return f"OBSERVER_NOTIFY_{channel.upper()}_URLS"


class _CredentialsFile(msgspec.Struct, forbid_unknown_fields=True):
    channels: dict[str, list[str]] = {}


def url_secrets(url: str) -> list[str]:
    """The parts of an apprise URL that can be secret: all but its scheme, port and address.

    Tokens sit in the user, password, path or query, and for many services where a host
    would be (``tgram://BOT_TOKEN/CHAT``, ``ntfy://TOPIC``, ``discord://ID/TOKEN``): that
    part is a secret too unless it is an IP address or localhost. The whole URL is one.
    """
    parts = urlsplit(url)
    # As written (hostname is lowercased), split at ':' and '@': a Telegram bot token
    # reads as a host and a port. A port is shorter than any secret registered.
    found = [url, parts.netloc]
    found += [piece for piece in re.split("[:@]", parts.netloc) if not _address(piece)]
    found += [unquote(segment) for segment in parts.path.split("/")]
    found += [value for _key, value in parse_qsl(parts.query)]
    return [part for part in found if part]


def _address(text: str) -> bool:
    """True for an IP address or localhost: no secret, and error texts name it."""
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return text == "localhost"
    return True


def channel_urls(
    settings: NotifierSettings, environ: Mapping[str, str] | None = None
) -> dict[str, list[str]]:
    """Each configured channel's URLs (possibly none), every secret in them registered.

    Raises
    ------
    ConfigError
        The credentials file is missing, open to others, not TOML of ``[channels]`` lists,
        or names a channel the configuration does not have.
    """
    environ = os.environ if environ is None else environ
    from_file: dict[str, list[str]] = {}
    if settings.credentials_file:
        path = Path(settings.credentials_file)
        raw = read_owner_only(path, f"notifier credentials file {path}")
        try:
            from_file = msgspec.toml.decode(raw, type=_CredentialsFile).channels
        except (msgspec.DecodeError, msgspec.ValidationError):
            # The decoder's message may quote the file, URLs and all: never shown.
            raise ConfigError(
                f"notifier credentials file {path} is not TOML of [channels] NAME = [URL, ...]"
            ) from None
        for url in (u for urls in from_file.values() for u in urls):
            _register(url)
        unknown = sorted(set(from_file) - set(settings.channels))
        if unknown:
            raise ConfigError(
                f"notifier credentials file {path} names channels not in [notifier.channels]: "
                + ", ".join(unknown)
            )
    found = {}
    for name in settings.channels:
        text = environ.get(env_name(name))
        urls = text.split() if text else from_file.get(name, [])
        for url in urls:
            _register(url)
        found[name] = urls
    return found


def _register(url: str) -> None:
    for secret in url_secrets(url):
        register_secret(secret)
    # A password is a credential however short (a mail server's, a user's choice): masked
    # as a whole word too. The URL's other short parts are often ordinary words.
    parts = urlsplit(url)
    passwords = [parts.password or ""]
    passwords += [v for k, v in parse_qsl(parts.query) if k.lower() in _PASSWORD_OPTIONS]
    for password in passwords:
        register_secret(unquote(password), short_too=True)


@dataclass(slots=True)
class ChannelTarget:
    """One URL of one channel: where messages go, and whether they should."""

    name: str  # "ops", or "ops.2" for the channel's second URL
    channel: str
    routing: ChannelSettings
    service: Any = field(repr=False)  # apprise.Apprise holding the one URL

    def wants(self, code: str, severity: str) -> bool:
        """True if this target's channel takes alerts of ``code`` at ``severity``."""
        routing = self.routing
        if SEVERITY_RANK[severity] < SEVERITY_RANK[routing.min_severity]:
            return False
        if routing.codes and code not in routing.codes:
            return False
        return code not in routing.exclude_codes

    def send(self, title: str, body: str, severity: str, timeout_s: float) -> str:
        """Send one message; "" when it went out, else why not (masked). Blocks: a thread's."""
        notify_type = apprise.NotifyType.SUCCESS if severity == "ok" else _NOTIFY_TYPE[severity]
        try:
            result = self.service.notify(
                body=body, title=title, notify_type=notify_type, timeout=timeout_s
            )
        except Exception as exc:  # a plugin's bug must not end the notifier
            return mask_secrets(f"{type(exc).__name__}: {exc}")[:MAX_ERROR]
        if result:
            return ""
        lines = [entry.message for entry in result.logs()]
        text = "; ".join(lines) or f"apprise: {result.status.name.lower()}"
        return mask_secrets(text)[:MAX_ERROR]


def targets_from(settings: NotifierSettings, urls: Mapping[str, list[str]]) -> list[ChannelTarget]:
    """One target per URL, in channel order: ``ops``, ``ops.2``, ... .

    Raises
    ------
    ConfigError
        A URL apprise does not take, named by its channel and position (never shown).
    """
    asset = apprise.AppriseAsset(storage_mode="memory")  # nothing of a URL on disk
    targets = []
    for channel, routing in settings.channels.items():
        for n, url in enumerate(urls.get(channel, []), start=1):
            service = apprise.Apprise(asset=asset)
            if not service.add(url):
                raise ConfigError(
                    f"URL {n} of alert channel {channel!r} is not an apprise URL "
                    f"(see {env_name(channel)} or the notifier credentials file)"
                )
            # By position, the first under the channel's own name: adding a second URL to a
            # channel renames nothing (a renamed target is sent the lookback's alerts anew).
            name = channel if n == 1 else f"{channel}.{n}"
            targets.append(ChannelTarget(name, channel, routing, service))
    return targets
