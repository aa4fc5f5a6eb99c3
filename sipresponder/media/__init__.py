"""Media formats, sans-I/O: RTP, RTCP, RFC 4733 events, G.711, tones, WAV (issue 21)."""
