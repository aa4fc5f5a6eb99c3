"""What crossed the wire, kept for whoever asks: the tests' Responder, the admin API
and the console alike.

Its own ring, above the adapters: the journal reads the core's Outcomes and stamps
them with its own clock, and nothing in ``transport/`` or ``uas/`` knows it exists
(``Server.recorder`` is a plain callable). ``testing/`` and ``ops/`` both import it,
so production ``--admin`` never depends on the testing API.
"""
