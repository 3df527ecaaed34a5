"""Names and ids typed by anyone: every text is either accepted or refused in one line."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mltrail.errors import InputError, MltrailError
from mltrail.ledger.client import check_name


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_any_text_is_a_valid_name_or_an_input_error(text: str) -> None:
    try:
        assert check_name(text) == text
    except InputError:
        return
    assert 0 < len(text.encode()) <= 64 and text.isprintable() and text == text.strip()


def test_resolve_never_fails_internally(open_as) -> None:
    dev = open_as("dev")
    aid = dev.register("model", "sha256:" + "5e" * 32, name="resnet").artefact_id

    @settings(max_examples=60, deadline=None)
    @given(st.one_of(st.text(max_size=90), st.sampled_from(
        ["resnet", aid, aid[:8], aid.upper(), "0x", "0X" + aid[2:], aid + "0", " resnet "])))
    def resolve(text: str) -> None:
        try:
            assert dev.resolve(text) == aid
        except MltrailError as exc:
            assert exc.exit_code == 2, exc.message

    resolve()
