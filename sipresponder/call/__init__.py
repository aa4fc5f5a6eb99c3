"""A call beyond its signalling, sans-I/O: its media stream (issue 21)."""
