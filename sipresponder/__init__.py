"""sipresponder: a stateless SIP user-agent server driven by TOML scenarios."""

__version__ = "0.1.0"
