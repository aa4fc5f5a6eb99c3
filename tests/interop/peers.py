"""Real SIP clients as the far end's counterpart: baresip and linphonec, headless.

``Baresip(...)`` and ``Linphonec(...)`` are context managers that start the client
in a temporary folder of its own, on an OS-picked free loopback port, registering
``sip:USER@127.0.0.1`` at a running responder (the ``Responder``/``SyncResponder``
of ``sipresponder.testing``, or the ``serve`` subprocess). Every output line is
captured; ``wait_for(pattern)`` waits on that output (a condition variable woken by
each line, never a sleep) and fails with the pattern and the output's tail. The
client is always ended at the end (its own way out: baresip SIGTERM, linphonec
``quit``, both hanging up and unregistering; then SIGKILL after a bounded wait), and
baresip lives no longer than ``LIFETIME`` seconds even if the test process dies
(``-t``; linphonec has no such switch).

Port: ``free_port()`` (bound then closed) just before the start; when the client
then reports the port taken (another process won the race), the start is retried
on a new one (``PORT_TRIES``).

What each client prints, read in its source (baresip v1.0.0: src/ua.c, src/call.c,
modules/menu/menu.c, and libre's sipsess/listen.c; linphonec 5.1: liblinphone's
console/linphonec.c, plus liblinphone's own log at ``-d 6``, which also echoes
every SIP message sent and received, each line at the start of an output line); the
class attributes below hold these (checked against the far end: the called-in,
hung-up, held, MWI and transfer cases of test_peers_harness.py):

====================== ======================================= ==========================================
event                  baresip (console, menu module)          linphonec (stdout; ``*`` = from its log)
====================== ======================================= ==========================================
registered             ``alice@127.0.0.1: {0/UDP/v4} 200 OK    ``*... moving from state
                       (server) [1 binding]``                  [LinphoneRegistrationProgress] to
                                                               [LinphoneRegistrationOk]``
outgoing call answered ``alice@127.0.0.1: Call established:    ``Call 1 with sip:200@... connected.``
                       sip:200@...``
outgoing call refused  ``sip:486@...: session closed: 486      ``Call 2 with sip:486@... error.``
                       Busy Here``
incoming call          answermode=auto: ``call: answering      ``Receiving new incoming call from
                       call on line 1 from sip:... with 200``; sip:..., assigned id 1``; with -a:
                       manual: ``...: Incoming call from: ...`` ``-------auto answering to call-------``
                       then ``Call established: sip:...``      then ``Call 1 with sip:... connected.``
ended by the far end   ``sip:...: session closed: Connection   ``Call 1 with sip:... ended (No error).``
(its BYE)              reset by peer`` (libre answers the BYE
                       200 then closes with ECONNRESET)
hung up by the client  ``call: terminate call 'CALL-ID' with  ``Call N with ... ended (No error).``
                       sip:...``
any end of a call      ``...: Call with sip:... terminated     ``Call N with ... ended (...).``
                       (duration: ...)``, only once it lasted
                       1 s or more
put on hold            ``call: got re-INVITE (SDP Offer)``     ``Call 1 has been paused by sip:....``
(re-INVITE sendonly)   (it prints no direction)
MWI (NOTIFY            only with the mwi module, which         ``*NOTIFY sip:... SIP/2.0``, then
message-summary)       SUBSCRIBEs: ``----- MWI for             ``*Event: message-summary`` and the body
                       alice@127.0.0.1 -----`` then the body   in the logged request; it answers 200
                                                               (linphonec itself prints nothing)
transfer (REFER)       ``menu: transferring call ID to         in a call: it answers 202 and calls the
                       'sip:...'`` then it dials that target   target: ``Establishing call id to
                                                               sip:target..., assigned id 2``; out of a
                                                               call: ``Receiving out of call refer to
                                                               sip:...``
====================== ======================================= ==========================================

Driving them: baresip reads its stdio module's keys from a pipe (no terminal
needed: it only fails to set the terminal mode, and says so); ``/dial URI``,
``/hangup``, ``/hold``, ``/resume``, ``/accept`` are its menu's long commands.
linphonec reads one command a line from a pipe as well (readline, no terminal
needed): ``call URI``, ``terminate``, ``answer``, ``pause``, ``resume``, ``quit``
(which hangs up and unregisters). Not ``--pipe``: with it, ``quit`` hangs after
"Terminating..." (before it unregisters) and only SIGKILL ends it, and it opens a
socket at the fixed path /tmp/linphonec-UID. linphonec needs
``$HOME/.local/share/linphone`` to exist (its database; without it the core never
starts its SIP transports, and every call fails with "No listening point"), so HOME
is the temporary folder; ``[sip] bind_address=127.0.0.1`` keeps it on loopback (it
binds [::] otherwise).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import ClassVar

from tests.conftest import require_binary
from tests.interop.conftest import free_port

START_TIMEOUT = 20.0  # seconds until the client is up (about 0.1 s here; CI is slower)
EVENT_TIMEOUT = 20.0  # default seconds for wait_for
STOP_TIMEOUT = 5.0  # seconds for a polite quit before SIGKILL
LIFETIME = 300  # seconds: baresip quits by itself after this (-t), a leak's bound
PORT_TRIES = 5
TAIL = 60  # output lines quoted in a failure

Pattern = str | re.Pattern[str]


class PeerError(AssertionError):
    """A peer did not start, or did not print what a test waited for."""


class Peer:
    """One client process: its output, waited on line by line, and its stdin."""

    name: ClassVar[str]
    # Printed once the client is up (then PORT_TAKEN in the output means: retry).
    READY: ClassVar[re.Pattern[str]]
    PORT_TAKEN: ClassVar[re.Pattern[str]]

    def __init__(self, registrar: tuple[str, int], workdir: Path, *, user: str = "alice",
                 password: str | None = None, auto_answer: bool = True) -> None:
        for name, value in (("user", user), ("password", password or "")):
            # ';' and '=' would start a parameter of baresip's account line, a line
            # break a key of linphonerc.
            if not re.fullmatch(r"[\w.!~*'()&+$%-]*", value):
                raise ValueError(f"{name} {value!r}: letters, digits and .!~*'()&+$%-_ "
                                 "only (it goes into the clients' configuration files)")
        self.registrar = registrar
        self.workdir = workdir
        self.user = user
        self.password = password  # for a Digest challenge (any realm)
        self.auto_answer = auto_answer
        self.port = 0
        self.ports_tried: list[int] = []  # one more than one: the race was lost and retried
        self.proc: subprocess.Popen[str] | None = None
        self.lines: list[str] = []
        self._eof = False
        self._changed = threading.Condition()
        self._reader: threading.Thread | None = None

    # -- life ------------------------------------------------------------------------
    def __enter__(self) -> Peer:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        for _ in range(PORT_TRIES):
            self.port = free_port()
            self.ports_tried.append(self.port)
            self.workdir.mkdir(parents=True, exist_ok=True)
            self._spawn(self.command())
            try:
                self.wait_for(self.READY, START_TIMEOUT, since=0)
            except PeerError:
                if not self.PORT_TAKEN.search(self.output):
                    self.stop()
                    raise
            else:
                if not self.PORT_TAKEN.search(self.output):
                    return
            self.stop()  # another process took the port between free_port and bind
        raise PeerError(f"{self.name}: every one of {PORT_TRIES} free ports was taken "
                        f"before it could bind it:\n{self.tail()}")

    def command(self) -> list[str]:
        """Writes the configuration for ``self.port`` and returns the command line."""
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        return dict(os.environ)

    def _spawn(self, cmd: list[str]) -> None:
        self.lines, self._eof = [], False
        self.proc = subprocess.Popen(
            cmd, cwd=self.workdir, env=self.environment(), stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
            start_new_session=True)  # a signal to the test run does not reach it first
        self._reader = threading.Thread(target=self._read, args=(self.proc,),
                                        name=f"{self.name}-stdout", daemon=True)
        self._reader.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._eof = True
            self._changed.notify_all()

    def quit(self) -> None:
        """The client's own way out (it unregisters and hangs up on the way)."""

    def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            try:
                self.quit()
                proc.wait(STOP_TIMEOUT)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait(STOP_TIMEOUT)
        if proc.stdin is not None:
            # It may have died with unread input: nothing left to flush to.
            with contextlib.suppress(OSError):
                proc.stdin.close()
        if self._reader is not None:
            self._reader.join(STOP_TIMEOUT)
        self.proc = None

    # -- output ----------------------------------------------------------------------
    @property
    def output(self) -> str:
        with self._changed:
            return "".join(self.lines)

    def tail(self, lines: int = TAIL) -> str:
        with self._changed:
            return "".join(self.lines[-lines:])

    def mark(self) -> int:
        """Where the output is now: ``wait_for(..., since=mark)`` sees only what follows."""
        with self._changed:
            return len(self.lines)

    def wait_for(self, pattern: Pattern, timeout: float = EVENT_TIMEOUT,
                 since: int = 0) -> re.Match[str]:
        """The first output line from line ``since`` on that ``pattern`` (a regex)
        matches, waiting up to ``timeout`` seconds for it; PeerError otherwise."""
        __tracebackhide__ = True
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        position = since
        with self._changed:
            while True:
                for index in range(position, len(self.lines)):
                    match = regex.search(self.lines[index])
                    if match:
                        return match
                position = len(self.lines)
                left = deadline - time.monotonic()
                if self._eof or left <= 0:
                    break
                self._changed.wait(left)
            why = "exited" if self._eof else f"printed nothing matching within {timeout}s"
        raise PeerError(f"{self.name} {why}; waited for {regex.pattern!r}; "
                        f"its last lines:\n{self.tail()}")

    def send(self, line: str) -> None:
        """One command line on the client's stdin."""
        if self.proc is None or self.proc.stdin is None:
            raise PeerError(f"{self.name} is not running: cannot send {line!r}")
        if "\n" in line or "\r" in line:
            raise ValueError(f"{self.name}: one command a line, got {line!r}")
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    # -- what tests ask of either --------------------------------------------------------
    REGISTERED: ClassVar[re.Pattern[str]]

    def registered(self, timeout: float = EVENT_TIMEOUT) -> re.Match[str]:
        """Waits until the client reports its registration answered 2xx."""
        return self.wait_for(self.REGISTERED, timeout)

    def dial(self, uri: str) -> None:
        raise NotImplementedError

    def hangup(self) -> None:
        raise NotImplementedError


class Baresip(Peer):
    """baresip (``-f`` folder, UDP on 127.0.0.1, no sound card: aubridge stands in)."""

    name = "baresip"
    READY = re.compile(r"baresip is ready\.|All \d+ useragents? registered")
    PORT_TAKEN = re.compile(r"Address already in use")
    REGISTERED = re.compile(r"@127\.0\.0\.1: \{0/UDP/v4\} 2\d\d [^(]*\(")
    ESTABLISHED = re.compile(r"Call established: (?P<peer>\S+)")
    ANSWERING = re.compile(r"call: answering call on line \d+ from (?P<peer>\S+) with "
                           r"(?P<code>\d{3})")
    INCOMING = re.compile(r"Incoming call from: (?P<name>\S*) ?(?P<peer>\S+) -")
    # The far end's BYE: libre answers it 200, then closes the session with ECONNRESET.
    FAR_END_BYE = re.compile(r"(?P<peer>\S+): session closed: Connection reset by peer")
    REFUSED = re.compile(r"(?P<peer>\S+): session closed: (?P<code>\d{3}) (?P<reason>.*)")
    HANGING_UP = re.compile(r"call: terminate call '(?P<call_id>[^']*)' with (?P<peer>\S+)")
    TERMINATED = re.compile(r"Call with (?P<peer>\S+) terminated")  # lasted 1 s or more
    REINVITE = re.compile(r"call: got re-INVITE(?P<offer> \(SDP Offer\))?")
    TRANSFER = re.compile(r"menu: transferring call \S+ to '(?P<target>[^']*)'")
    MWI = re.compile(r"----- MWI for (?P<aor>\S+) -----")

    CONFIG = """\
poll_method		epoll
sip_listen		127.0.0.1:{port}
sip_trans_def		udp
audio_player		aubridge,peer
audio_source		aubridge,peer
audio_alert		aubridge,peer
rtp_ports		{rtp_low}-{rtp_high}
module_path		/usr/lib/baresip/modules
module			stdio.so
module			g711.so
module			aubridge.so
module_app		account.so
module_app		menu.so
"""

    def command(self) -> list[str]:
        binary = require_binary("baresip", "apt-get install baresip-core")
        host, port = self.registrar
        answer = "auto" if self.auto_answer else "manual"
        (self.workdir / "config").write_text(self.CONFIG.format(
            port=self.port, rtp_low=10000, rtp_high=60000))
        auth = f"auth_pass={self.password};" if self.password is not None else ""
        (self.workdir / "accounts").write_text(
            f"<sip:{self.user}@{host}:{port};transport=udp>;{auth}regint=600;"
            f"answermode={answer}\n")
        # stdbuf: its console goes through stdio, block-buffered into a pipe.
        return ["stdbuf", "-oL", binary, "-f", str(self.workdir), "-t", str(LIFETIME)]

    def quit(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)  # hangs up (BYE) and unregisters

    def dial(self, uri: str) -> None:
        self.send(f"/dial {uri}")

    def hangup(self) -> None:
        self.send("/hangup")

    def answer(self) -> None:
        self.send("/accept")

    def hold(self) -> None:
        self.send("/hold")

    def resume(self) -> None:
        self.send("/resume")


class Linphonec(Peer):
    """linphonec (``-c`` file, HOME a temporary folder, commands on stdin, ``-d 6`` so
    that registrations and SIP messages show in its output)."""

    name = "linphonec"
    READY = re.compile(r"linphonec> ")
    PORT_TAKEN = re.compile(r"bind\(\) failed for .* Address already in use")
    REGISTERED = re.compile(r"to \[LinphoneRegistrationOk\]")
    INCOMING = re.compile(r"Receiving new incoming call from (?P<peer>.+?), "
                          r"assigned id (?P<id>\d+)")
    AUTO_ANSWERING = re.compile(r"-------auto answering to call-------")
    OUTGOING = re.compile(r"Establishing call id to (?P<peer>.+?), assigned id (?P<id>\d+)")
    CONNECTED = re.compile(r"Call (?P<id>\d+) with (?P<peer>.+?) connected\.")
    ENDED = re.compile(r"Call (?P<id>\d+) with (?P<peer>.+?) ended \((?P<reason>[^)]*)\)\.")
    ERROR = re.compile(r"Call (?P<id>\d+) with (?P<peer>.+?) error\.")
    PAUSED_BY_REMOTE = re.compile(r"Call (?P<id>\d+) has been paused by (?P<peer>.+?)\.$")
    REFER_OUT_OF_CALL = re.compile(r"Receiving out of call refer to (?P<target>\S+)")
    # The log echoes each SIP message, sent or received (the line before says which).
    NOTIFY = re.compile(r"^NOTIFY (?P<uri>sips?:\S+) SIP/2\.0")
    MWI = re.compile(r"^Event: message-summary", re.IGNORECASE)

    CONFIG = """\
[sip]
sip_port={port}
sip_tcp_port=0
sip_tls_port=0
bind_address=127.0.0.1
default_proxy=0
[rtp]
audio_rtp_port=-1
video_rtp_port=-1
[video]
capture=0
display=0
automatically_initiate=0
automatically_accept=0
[proxy_0]
reg_proxy=<sip:{host}:{registrar_port};transport=udp>
reg_identity=sip:{user}@{host}
reg_expires=600
reg_sendregister=1
"""
    AUTH = """\
[auth_info_0]
username={user}
passwd={password}
"""

    def environment(self) -> dict[str, str]:
        return dict(os.environ, HOME=str(self.workdir))

    def command(self) -> list[str]:
        binary = require_binary("linphonec", "apt-get install linphone-cli")
        host, port = self.registrar
        (self.workdir / ".local" / "share" / "linphone").mkdir(parents=True, exist_ok=True)
        config = self.workdir / "linphonerc"
        text = self.CONFIG.format(port=self.port, host=host, registrar_port=port,
                                  user=self.user)
        if self.password is not None:
            text += self.AUTH.format(user=self.user, password=self.password)
        config.write_text(text)
        return [binary, "-c", str(config), "-d", "6",
                *(["-a"] if self.auto_answer else [])]

    def quit(self) -> None:
        self.send("quit")

    def dial(self, uri: str) -> None:
        self.send(f"call {uri}")

    def hangup(self) -> None:
        self.send("terminate")

    def answer(self) -> None:
        self.send("answer")

    def hold(self) -> None:
        self.send("pause")

    def resume(self) -> None:
        self.send("resume")
