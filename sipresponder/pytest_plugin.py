"""The pytest plugin under its first name, for ``-p sipresponder.pytest_plugin`` and
``pytest_plugins = ["sipresponder.pytest_plugin"]``; the code lives in
:mod:`sipresponder.testing.pytest_plugin`, which the ``pytest11`` entry point loads."""

from .testing.pytest_plugin import (
    pytest_configure,
    pytest_runtest_makereport,
    sip_responder,
    sip_responder_async,
    sip_responder_async_factory,
    sip_responder_factory,
)

__all__ = ["pytest_configure", "pytest_runtest_makereport", "sip_responder",
           "sip_responder_async", "sip_responder_async_factory", "sip_responder_factory"]
