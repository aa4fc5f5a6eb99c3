"""The bodies of a NOTIFY that names none, by event package (RFC 6665 7.2: each
package defines its body), sans-I/O.

A ``[[rule.then]]`` NOTIFY step gives its own ``body`` when the test needs one; when
it gives none, the far end still sends what the package promises, so that a client
parsing it meets a well-formed document:

- ``message-summary`` (RFC 3842 5.2): ``Messages-Waiting: no`` and the account;
- ``presence`` (RFC 3863 4.1, PIDF): one tuple, basic status ``open``;
- ``dialog`` (RFC 4235 4.1): a full, empty dialog-info document, version counting up;
- ``refer`` (RFC 3515 2.4.5): ``SIP/2.0 100 Trying`` while active, ``SIP/2.0 200 OK``
  when the NOTIFY terminates the subscription.

Any other package gets no body (RFC 6665 allows an empty NOTIFY: "the NOTIFY
request MAY contain a body ... or no body").
"""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

SIPFRAG = "message/sipfrag;version=2.0"


def default_body(event: str, resource: str, *, terminated: bool, version: int
                 ) -> tuple[bytes, str] | None:
    """The body and content type for ``event`` (the Event header's package, without
    parameters) about ``resource`` (the subscribed URI), or None."""
    package = event.split(";", 1)[0].strip().lower()
    if package == "message-summary":
        text = f"Messages-Waiting: no\r\nMessage-Account: {resource}\r\n"
        return text.encode(), "application/simple-message-summary"
    if package == "presence":
        text = ('<?xml version="1.0" encoding="UTF-8"?>\r\n'
                f'<presence xmlns="urn:ietf:params:xml:ns:pidf" entity={quoteattr(resource)}>'
                '\r\n  <tuple id="sipresponder"><status><basic>open</basic></status></tuple>'
                "\r\n</presence>\r\n")
        return text.encode(), "application/pidf+xml"
    if package == "dialog":
        text = ('<?xml version="1.0" encoding="UTF-8"?>\r\n'
                '<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" '
                f'version="{version}" state="full" entity={quoteattr(resource)}/>\r\n')
        return text.encode(), "application/dialog-info+xml"
    if package == "refer":
        line = "SIP/2.0 200 OK" if terminated else "SIP/2.0 100 Trying"
        return f"{line}\r\n".encode(), SIPFRAG
    return None
