"""Every report value is rendered for people: no dict, list repr or JSON in a cell."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from mltrail.render.values import value
from reportkit import text_of

ADDR = "0x" + "ab12" * 10
DIGEST = "sha256:" + "cd" * 32


def test_scalars() -> None:
    assert text_of(value(None)) == "—"
    assert text_of(value(True)) == "yes" and text_of(value(False)) == "no"
    assert text_of(value(3)) == "3"
    assert text_of(value(0.123456789)) == "0.1235"
    assert text_of(value(0.0)) == "0"
    assert text_of(value(2.5e-7)) == "2.500e-7"
    assert text_of(value(math.inf)) == "∞" and text_of(value(-math.inf)) == "−∞"
    assert text_of(value(math.nan)) == "not a number"
    assert text_of(value("<b>x</b>")) == "<b>x</b>"  # escaped, shown as text
    assert "<b>" not in value("<b>x</b>")


def test_addresses_carry_names_and_digests_are_shortened() -> None:
    named = value(ADDR, {ADDR.lower(): "alice"})
    assert "alice" in text_of(named) and f'title="{ADDR}"' in named
    assert "…" in text_of(value(ADDR)) and len(text_of(value(ADDR))) < 20
    d = value(DIGEST)
    assert text_of(d).startswith("sha256:cdcd") and "…" in text_of(d)
    assert f'title="{DIGEST}"' in d


def test_mappings_are_sub_tables_and_lists_are_lists() -> None:
    html = value({"alpha_per_test": 0.0025, "inner": {"n": 3, "ok": True}})
    assert html.count('<table class="sub">') == 2 and "alpha per test" in html
    rows = value([{"attack": "simba", "eps": 0.25}, {"attack": "square", "eps": 0.5}])
    assert 'class="sub records"' in rows and "<th>attack</th>" in rows
    assert text_of(value([1, 2, 3])) == "1, 2, 3"
    many = text_of(value([float(i) for i in range(500)]))
    assert many == "500 values from 0 to 499"
    long = value([f"item {i} " + "x" * 50 for i in range(20)])
    assert "<ul" in long and "8 more" in text_of(long)
    assert text_of(value([])) == "none" and text_of(value({})) == "—"


class _Model:
    def model_dump(self) -> dict[str, object]:
        return {"seed": 3, "source": "ledger"}


def test_models_render_as_their_fields() -> None:
    assert 'class="sub"' in value(_Model()) and "ledger" in text_of(value(_Model()))


WORDS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz _-.:0123456789", max_size=30)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | WORDS
NESTED = st.recursive(SCALARS, lambda kids: st.lists(kids, max_size=15)
                      | st.dictionaries(WORDS, kids, max_size=6), max_leaves=40)


@settings(max_examples=150, deadline=None)
@given(NESTED)
def test_random_nested_values_never_render_as_a_repr(v: object) -> None:
    text = text_of(value(v))
    assert "{" not in text and "[" not in text and "}" not in text and "]" not in text
    assert "None" not in text and "'" not in text and '"' not in text
