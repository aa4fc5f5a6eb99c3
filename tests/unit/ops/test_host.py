"""One admin behind an interface (ops/host.py): the routes are written once, in Admin,
and each host implements the whole interface."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from sipresponder.ops.admin import Admin
from sipresponder.ops.gatherer import Cluster
from sipresponder.ops.host import AdminHost
from sipresponder.ops.inprocess import InProcess
from sipresponder.scenario.loader import parse_scenario
from sipresponder.testing.api import Responder

MEMBERS = sorted(name for name in vars(AdminHost) if not name.startswith("_")) + sorted(
    AdminHost.__annotations__)


@pytest.mark.parametrize("host", [InProcess, Cluster])
def test_each_host_implements_the_whole_interface(host: type) -> None:
    assert "swap" in MEMBERS and "journal" in MEMBERS  # the list is read, not empty
    instance = (InProcess(Responder(), "") if host is InProcess
                else Cluster(parse_scenario("", "<test>"), "", 2, Path("/nonexistent")))
    missing = [name for name in MEMBERS if not hasattr(instance, name)]
    assert not missing, f"{host.__name__} lacks {missing}"
    for name in MEMBERS:
        ours = inspect.getattr_static(AdminHost, name, None)
        theirs = inspect.getattr_static(host, name, None)
        if inspect.iscoroutinefunction(ours):
            assert inspect.iscoroutinefunction(theirs), f"{host.__name__}.{name} is not async"


def test_the_routes_exist_once() -> None:
    # No subclass overrides Admin's handlers (ClusterAdmin did, and its swap drifted
    # from Admin's); the cluster is a host, not a Responder.
    assert Admin.__subclasses__() == []
    assert not issubclass(Cluster, Responder)


def test_a_responder_is_wrapped_in_the_in_process_host() -> None:
    responder = Responder()
    admin = Admin(responder, "[default]\ncode = 200\n")
    assert isinstance(admin.host, InProcess) and admin.host.responder is responder
    assert admin.scenario_text == "[default]\ncode = 200\n"
