"""Unit tests of abnf.py: the lexical pieces of the grammar (RFC 3261 7, 25)."""

from __future__ import annotations

import pytest

from sipresponder.sip.abnf import split_top_level


@pytest.mark.parametrize("value", ['"unterminated <sip:a@b>, <sip:c@d>', "<sip:a@b, sip:c@d",
                                   '"x\\", <sip:c@d>'])
def test_unterminated_quote_or_bracket_raises(value: str) -> None:
    with pytest.raises(ValueError):
        split_top_level(value)
