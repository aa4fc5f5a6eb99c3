"""The UAC side of the core, sans-I/O (issue 20): client transactions (RFC 3261 17.1)
and dialog state (RFC 3261 12), for the requests the far end sends. Timers and the
clock are passed in; nothing here touches a socket."""
