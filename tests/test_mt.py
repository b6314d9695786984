"""Text translation: real Apertium, real CTranslate2 decoding on tiny random models built here, no mocks."""

from __future__ import annotations

import random
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from livedub.engines.errors import BadInputError, LivedubError, MissingModelError
from livedub.engines.mt import Translator
from livedub.engines.mt.identity import IdentityTranslator
from livedub.engines.mt.text import chunk_text, join_sentences, split_sentences

# ---------------------------------------------------------------- sentence splitting and chunking


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The house is red. The car is blue.", ["The house is red.", "The car is blue."]),
        ("Dr. Smith lives in London. He likes it.", ["Dr. Smith lives in London.", "He likes it."]),
        ("Use a tool, e.g. a hammer. Then stop.", ["Use a tool, e.g. a hammer.", "Then stop."]),
        ("It costs 3.5 euros. Fine!", ["It costs 3.5 euros.", "Fine!"]),
        ("¿Dónde está? ¡Hola! Bien.", ["¿Dónde está?", "¡Hola!", "Bien."]),
        ("你好。我很好！你呢？", ["你好。", "我很好！", "你呢？"]),
        ('He said "no." Then he left.', ['He said "no."', "Then he left."]),
        ("Wait... what? Really?!", ["Wait... what?", "Really?!"]),
        ("Mr. and Mrs. Brown met J. Smith at 5 p.m. in the U.S. Army base. Done.",
         ["Mr. and Mrs. Brown met J. Smith at 5 p.m. in the U.S. Army base.", "Done."]),
        ("Apples, pears, etc. Then we left.", ["Apples, pears, etc.", "Then we left."]),
        ("Apples, pears, etc. and more.", ["Apples, pears, etc. and more."]),
        ("hello Version 2.0 is out", ["hello Version 2.0 is out"]),
        ("  line one.\n\nline two  ", ["line one.", "line two"]),
        ("", []),
        ("   ", []),
    ],
)
def test_sentences_split_at_real_ends_only(text, expected):
    assert split_sentences(text) == expected


def test_long_text_chunks_fit_the_budget_without_breaking_words():
    clause = "the quick brown fox jumps over the lazy dog, then it runs away; nobody sees it"
    text = " ".join([clause] * 40) + ". Short one."
    chunks = chunk_text(text, max_len=120)
    assert len(chunks) > 10 and chunks[-1] == "Short one."
    assert all(len(c) <= 120 for c in chunks)
    words = set(text.replace(",", " ").replace(";", " ").replace(".", " ").split())
    for c in chunks:
        assert set(c.replace(",", " ").replace(";", " ").replace(".", " ").split()) <= words
    assert join_sentences(chunks) == text  # nothing lost, spacing intact


def test_chunks_measure_with_a_token_counter_and_keep_an_unbreakable_word_whole():
    word = "Pneumonoultramicroscopicsilicovolcanoconiosis"
    chunks = chunk_text(f"one two three four five six seven {word} eight.", max_len=3,
                        measure=lambda s: len(s.split()))
    assert chunks == ["one two three", "four five six", f"seven {word} eight."]
    assert chunk_text(f"one two {word} three.", max_len=10) == ["one two", word, "three."]
    cjk = chunk_text("你好" * 50 + "。", max_len=16)
    assert all(len(c) <= 16 for c in cjk) and "".join(cjk) == "你好" * 50 + "。"


def test_join_keeps_spacing_sane():
    assert join_sentences(["Hola ,  mundo .", " ¿ Qué tal ?"]) == "Hola, mundo. ¿Qué tal?"
    assert join_sentences(["你好。", "我很好。"], "zh") == "你好。我很好。"
    assert join_sentences(["Bonjour !", "Ça va ?"], "fr") == "Bonjour ! Ça va ?"


# ---------------------------------------------------------------- identity


def test_identity_passes_text_through():
    tr = IdentityTranslator("en")
    assert isinstance(tr, Translator)
    assert (tr.source, tr.target) == ("en", "en")
    assert tr.translate("  Hello   world.\nBye. ") == "Hello world. Bye."
    assert tr.translate("") == ""
    assert tr.translate_sentences(["A.", " B. "]) == ["A.", "B."]


# ---------------------------------------------------------------- Apertium (Debian apertium + apertium-eng-spa)

needs_apertium = pytest.mark.skipif(
    shutil.which("apertium") is None, reason="Debian apertium is not installed (apt-get install apertium-eng-spa)"
)


@pytest.fixture(scope="module")
def en_es():
    from livedub.engines.mt.apertium import ApertiumTranslator

    return ApertiumTranslator("en", "es")


@needs_apertium
def test_apertium_lists_installed_pairs_as_iso_639_1():
    from livedub.engines.mt.apertium import apertium_pairs

    pairs = apertium_pairs()
    assert ("en", "es") in pairs and ("es", "en") in pairs
    assert all(len(a) == 2 and len(b) == 2 for a, b in pairs)


@needs_apertium
@pytest.mark.parametrize(
    ("english", "spanish_words"),
    [
        ("The house is red.", ["casa", "roja"]),
        ("I have a big dog.", ["perro", "grande"]),
        ("We eat bread and cheese every morning.", ["pan", "queso", "mañana"]),
        ("The children are playing in the garden.", ["niños", "jardín"]),
    ],
)
def test_apertium_translates_english_to_spanish(en_es, english, spanish_words):
    spanish = en_es.translate(english).lower()
    for word in spanish_words:
        assert word in spanish


@needs_apertium
def test_apertium_translates_spanish_to_english():
    from livedub.engines.mt.apertium import ApertiumTranslator

    es_en = ApertiumTranslator("spa", "eng")  # ISO 639-3 codes work too
    assert (es_en.source, es_en.target) == ("es", "en")
    english = es_en.translate("La casa es roja. Mi hermana trabaja en un hospital.").lower()
    assert "house" in english and "red" in english and "sister" in english and "hospital" in english


@needs_apertium
def test_apertium_keeps_sentences_separate_and_in_order(en_es):
    sentences = ["The house is red.", "The blue car", "Where is the dog?", "", "I have 3.5 kilos of apples!",
                 "My sister works in a hospital."]
    out = en_es.translate_sentences(sentences)
    assert len(out) == len(sentences) and out[3] == ""
    assert "casa" in out[0] and "coche" in out[1] and "perro" in out[2]
    assert "3.5" in out[4] and "manzanas" in out[4] and "hospital" in out[5]
    passage = en_es.translate(" ".join(sentences))
    assert passage.index("casa") < passage.index("coche") < passage.index("perro") < passage.index("manzanas")


@needs_apertium
def test_apertium_empty_text_gives_empty_string(en_es):
    assert en_es.translate("") == ""
    assert en_es.translate(" \n ") == ""


@needs_apertium
def test_apertium_long_text_is_one_run_per_batch(en_es):
    text = " ".join(["The house is red.", "I have a big dog.", "Where is the station?"] * 40)
    t0 = time.perf_counter()
    spanish = en_es.translate(text)
    elapsed = time.perf_counter() - t0
    assert spanish.count("casa") == 40 and spanish.count("perro") == 40
    assert elapsed < 10  # 120 sentences; one run each would take ~20 s


@needs_apertium
def test_apertium_kept_pipeline_translates_as_a_one_off_run_does(en_es):
    """The kept null-flush pipeline gives what `apertium -u` gives, sentence by sentence, special
    characters of Apertium's stream format included."""
    import subprocess

    sentences = ["The house is very big.", "I paid $5 for [this] at home, 50% off!", "Is it a/b or c\\d?",
                 "My brother has a red car.", "Where is the station?"]
    kept = en_es.translate_sentences(sentences)
    assert en_es._pipe is not None and en_es._pipe.alive
    for sentence, mine in zip(sentences, kept, strict=True):
        once = subprocess.run(["apertium", "-u", "eng-spa"], input=sentence + "\n", capture_output=True,
                              text=True, timeout=60).stdout
        assert mine == " ".join(once.split()), (sentence, mine, once)
    assert "$5" in kept[1] and "[" in kept[1] and "50%" in kept[1]


@needs_apertium
def test_apertium_kept_pipeline_comes_back_after_it_dies(en_es):
    import os
    import signal

    en_es.translate("Hello.")
    pipe = en_es._pipe
    os.killpg(pipe._proc.pid, signal.SIGKILL)
    pipe._proc.wait(timeout=5)
    assert "perro" in en_es.translate("I have a big dog.")
    assert en_es._pipe is not pipe and en_es._pipe.alive
    # a NUL inside the text cannot end the answer early: the next sentence still gets its own translation
    assert "casa" in en_es.translate("The house\0 is red.")
    assert "coche" in en_es.translate("The blue car.")


@needs_apertium
def test_apertium_pipeline_stops_with_the_pool():
    from livedub.realtime.pool import ModelPool

    pool = ModelPool()
    translator = pool.translator("en", "es")
    assert "casa" in translator.translate("The house.")
    proc = translator._pipe._proc
    pool.close()
    assert proc.wait(timeout=5) is not None


def test_apertium_missing_pair_names_the_package_to_install():
    from livedub.engines.mt.apertium import ApertiumTranslator

    with pytest.raises(MissingModelError, match=r"apt-get install apertium apertium-eng-kat"):
        ApertiumTranslator("en", "ka")


# ---------------------------------------------------------------- CTranslate2 on tiny random models built here

_WORDS = ("the", "a", "house", "car", "dog", "cat", "red", "blue", "big", "small", "is", "are", "has", "have",
          "we", "you", "they", "see", "eat", "run", "walk", "bread", "cheese", "garden", "station", "morning",
          "sister", "hospital", "water", "green", "old", "new", "one", "two", "three")


def _synthetic_sentences(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 9))).capitalize() + "."
            for _ in range(n)]


def _train_spm(path: Path, seed: int) -> list[str]:
    """Train a tiny unigram sentencepiece model at `path`; returns its pieces in id order."""
    import sentencepiece as spm

    prefix = path.parent / f"spm-training-{seed}"
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_synthetic_sentences(300, seed)), model_prefix=str(prefix), vocab_size=60,
        model_type="unigram", character_coverage=1.0, minloglevel=2,
    )
    Path(f"{prefix}.model").rename(path)
    Path(f"{prefix}.vocab").unlink()
    sp = spm.SentencePieceProcessor(model_file=str(path))
    return [sp.id_to_piece(i) for i in range(sp.get_piece_size())]


def _save_random_transformer(out: Path, source_vocab: list[str], target_vocab: list[str], config: dict,
                             d: int = 32, ffn: int = 64, heads: int = 2, seed: int = 0) -> None:
    """A 1-layer Transformer with random weights, written with CTranslate2's own model-spec API."""
    from ctranslate2.specs import TransformerSpec

    rng = np.random.default_rng(seed)

    def weights(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.2).astype(np.float32)

    def norm(layer) -> None:
        layer.gamma = np.ones(d, np.float32)
        layer.beta = np.zeros(d, np.float32)

    def linear(layer, n_out: int, n_in: int) -> None:
        layer.weight = weights(n_out, n_in)
        layer.bias = np.zeros(n_out, np.float32)

    def attention(att, fused: tuple[int, ...]) -> None:
        norm(att.layer_norm)
        for lin, n_out in zip(att.linear, fused, strict=True):
            linear(lin, n_out, d)

    def feed_forward(ff) -> None:
        norm(ff.layer_norm)
        linear(ff.linear_0, ffn, d)
        linear(ff.linear_1, d, ffn)

    spec = TransformerSpec.from_config(1, heads)
    spec.encoder.embeddings[0].weight = weights(len(source_vocab), d)
    norm(spec.encoder.layer_norm)
    for layer in spec.encoder.layer:
        attention(layer.self_attention, (3 * d, d))
        feed_forward(layer.ffn)
    spec.decoder.embeddings.weight = weights(len(target_vocab), d)
    norm(spec.decoder.layer_norm)
    linear(spec.decoder.projection, len(target_vocab), d)
    for layer in spec.decoder.layer:
        attention(layer.self_attention, (3 * d, d))
        attention(layer.attention, (d, 2 * d, d))
        feed_forward(layer.ffn)
    for key, value in config.items():
        setattr(spec.config, key, value)
    spec.register_source_vocabulary(source_vocab)
    spec.register_target_vocabulary(target_vocab)
    spec.validate()
    spec.optimize()
    out.mkdir(parents=True, exist_ok=True)
    spec.save(str(out))


def build_marian(out: Path, multi_target: bool = False) -> Path:
    """OPUS-MT layout: source.spm + target.spm, separate vocabularies, optional >>xxx<< target tokens."""
    out.mkdir(parents=True)
    source = [*_train_spm(out / "source.spm", seed=1), "<pad>"]
    target = [*_train_spm(out / "target.spm", seed=2), "<pad>"]
    if multi_target:
        source += [">>spa<<", ">>fra<<", ">>deu<<"]
    _save_random_transformer(out, source, target, {"decoder_start_token": "</s>"})
    return out


def build_nllb(out: Path) -> Path:
    """NLLB layout: one sentencepiece.bpe.model, language tokens like eng_Latn in the shared vocabulary."""
    out.mkdir(parents=True)
    vocab = [*_train_spm(out / "sentencepiece.bpe.model", seed=3), "<pad>",
             "eng_Latn", "spa_Latn", "fra_Latn", "zho_Hans", "zho_Hant"]
    _save_random_transformer(out, vocab, vocab, {"decoder_start_token": "</s>"}, seed=1)
    return out


def build_m2m100(out: Path) -> Path:
    """M2M100 layout: one sentencepiece.bpe.model, __en__-style language tokens in the shared vocabulary."""
    out.mkdir(parents=True)
    vocab = [*_train_spm(out / "sentencepiece.bpe.model", seed=4), "<pad>", "__en__", "__es__", "__fr__",
             "madeupword0"]
    _save_random_transformer(out, vocab, vocab, {"decoder_start_token": "</s>"}, seed=2)
    return out


@pytest.fixture(scope="module")
def ct2_models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ct2")
    return {
        "marian": build_marian(root / "opus-mt-en-es"),
        "marian-multi": build_marian(root / "opus-mt-en-mul", multi_target=True),
        "nllb": build_nllb(root / "nllb-tiny"),
        "m2m100": build_m2m100(root / "m2m100-tiny"),
    }


@pytest.mark.parametrize(("name", "family"),
                         [("marian", "marian"), ("marian-multi", "marian"), ("nllb", "nllb"), ("m2m100", "m2m100")])
def test_ctranslate2_layout_is_detected_from_the_directory(ct2_models, name, family):
    from livedub.engines.mt.ctranslate2 import detect_layout

    assert detect_layout(ct2_models[name]).family == family


@pytest.mark.parametrize("name", ["marian", "marian-multi", "nllb", "m2m100"])
def test_ctranslate2_loads_and_decodes_a_batch(ct2_models, name):
    from livedub.engines.mt.ctranslate2 import CTranslate2Translator

    tr = CTranslate2Translator(ct2_models[name], "en", "es")
    assert isinstance(tr, Translator)
    if tr.device == "cpu":
        assert tr.compute_type.startswith("int8")
    out = tr.translate_sentences(["The red house.", "", "A big dog eats bread in the garden."])
    assert len(out) == 3 and all(isinstance(s, str) for s in out) and out[1] == ""
    assert tr.translate("") == ""
    assert isinstance(tr.translate("The red house. A big dog."), str)


@pytest.mark.parametrize(("name", "source_token", "target_token"),
                         [("nllb", "eng_Latn", "spa_Latn"), ("m2m100", "__en__", "__es__")])
def test_ctranslate2_forces_the_target_language_and_strips_it(ct2_models, name, source_token, target_token):
    from livedub.engines.mt.ctranslate2 import CTranslate2Translator

    tr = CTranslate2Translator(ct2_models[name], "en", "es")
    source, prefix = tr.encode("The red house.")
    assert source[0] == source_token and source[-1] == "</s>" and prefix == [target_token]
    raw = tr.model.translate_batch([source], target_prefix=[prefix], beam_size=2, max_decoding_length=12,
                                   return_scores=True)[0]
    assert raw.hypotheses[0][0] == target_token  # the decoder was made to start in Spanish
    assert target_token not in tr.decode(raw.hypotheses[0])
    for text in tr.translate_sentences(["The red house.", "We see a green car."]):
        assert "_Latn" not in text and "__" not in text


def test_ctranslate2_opus_multi_target_models_get_a_target_token(ct2_models):
    from livedub.engines.mt.ctranslate2 import CTranslate2Translator

    multi = CTranslate2Translator(ct2_models["marian-multi"], "en", "fr")
    source, prefix = multi.encode("The red house.")
    assert source[0] == ">>fra<<" and source[-1] == "</s>" and prefix is None
    bilingual = CTranslate2Translator(ct2_models["marian"], "en", "es")
    source, prefix = bilingual.encode("The red house.")
    assert not source[0].startswith(">>") and prefix is None
    with pytest.raises(BadInputError, match=r">>spa<<"):
        CTranslate2Translator(ct2_models["marian-multi"], "en", "ja")


def test_ctranslate2_nllb_language_codes(ct2_models):
    from livedub.engines.mt.ctranslate2 import CTranslate2Translator

    assert CTranslate2Translator(ct2_models["nllb"], "en", "zh").encode("Hi.")[1] == ["zho_Hans"]
    assert CTranslate2Translator(ct2_models["nllb"], "eng_Latn", "fra_Latn").encode("Hi.")[1] == ["fra_Latn"]
    with pytest.raises(BadInputError, match="no token for language 'de'"):
        CTranslate2Translator(ct2_models["nllb"], "en", "de")


def test_ctranslate2_long_text_is_chunked_to_the_token_budget(ct2_models, caplog):
    from livedub.engines.mt.ctranslate2 import CTranslate2Translator

    sentences = _synthetic_sentences(30, seed=9)
    probe = CTranslate2Translator(ct2_models["m2m100"], "en", "es")
    budget = max(probe.count_tokens(s) for s in sentences)  # every sentence fits, the long one does not
    tr = CTranslate2Translator(ct2_models["m2m100"], "en", "es", max_tokens=budget)
    long_sentence = " ".join(s.rstrip(".").lower() + "," for s in sentences[:6]) + " the end."
    text = " ".join(sentences) + " " + long_sentence.capitalize()
    chunks = chunk_text(text, tr.max_tokens, tr.count_tokens)
    assert chunks[:30] == sentences  # every sentence kept whole and in order
    assert len(chunks) > 31 and all(tr.count_tokens(c) <= budget for c in chunks)
    with caplog.at_level("DEBUG", logger="livedub.mt"):
        out = tr.translate_sentences(chunks)
        assert isinstance(tr.translate(text), str)
    assert len(out) == len(chunks)
    assert any("sentences" in r.getMessage() for r in caplog.records)


def test_ctranslate2_unusable_directories_fail_clearly(ct2_models, tmp_path):
    from livedub.engines.mt.ctranslate2 import CTranslate2Translator

    with pytest.raises(MissingModelError, match="does not exist"):
        CTranslate2Translator(tmp_path / "nowhere", "en", "es")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingModelError, match="no model.bin"):
        CTranslate2Translator(tmp_path / "empty", "en", "es")
    no_spm = Path(shutil.copytree(ct2_models["nllb"], tmp_path / "no-spm"))
    (no_spm / "sentencepiece.bpe.model").unlink()
    with pytest.raises(MissingModelError, match="sentencepiece.bpe.model"):
        CTranslate2Translator(no_spm, "en", "es")
    no_lang = Path(shutil.copytree(ct2_models["m2m100"], tmp_path / "no-lang"))
    vocab = (no_lang / "shared_vocabulary.json").read_text().replace("__en__", "xen").replace("__es__", "xes")
    (no_lang / "shared_vocabulary.json").write_text(vocab.replace("__fr__", "xfr"))
    with pytest.raises(LivedubError, match="unrecognised model layout"):
        CTranslate2Translator(no_lang, "en", "es")


# ---------------------------------------------------------------- Apertium pairs out of the box (Makefile)

def _modes_installed(*modes: str) -> bool:
    from livedub.engines.mt.apertium import installed_modes

    return set(modes) <= set(installed_modes())


needs_pivot_pairs = pytest.mark.skipif(
    shutil.which("apertium") is None or not _modes_installed("eng-spa", "spa-ita", "es-fr", "en-gl", "eng-cat"),
    reason="the Makefile's Apertium pairs are not installed (make system)",
)


@needs_pivot_pairs
def test_apertium_finds_pairs_named_with_two_or_three_letter_codes():
    from livedub.engines.mt.apertium import ApertiumTranslator, apertium_modes, mode_package

    modes = apertium_modes()
    assert modes[("en", "gl")] == "en-gl" and modes[("es", "fr")] == "es-fr"  # Debian's older 2-letter names
    assert modes[("en", "ca")] == "eng-cat" and modes[("es", "it")] == "spa-ita"
    assert all(len(a) == 2 and len(b) == 2 for a, b in modes)
    assert not any("_" in mode for mode in modes.values())  # variants such as spa-cat_valencia stay out
    en_gl = ApertiumTranslator("en", "gl")
    assert (en_gl.mode, en_gl.name) == ("en-gl", "apertium en-gl")
    assert "casa" in en_gl.translate("The house is red.").lower()
    assert mode_package("en-gl") == "apertium-en-gl" and mode_package("spa-ita") == "apertium-spa-ita"


def test_every_translator_names_what_translates():
    from livedub.engines.mt.bergamot import BergamotTranslator

    assert IdentityTranslator("en").name == "identity"
    assert BergamotTranslator("en", "pt").name == "bergamot en-pt"
    assert BergamotTranslator("pt", "en").name == "bergamot pt-en"


@needs_apertium
def test_apertium_translator_names_its_mode(en_es):
    assert en_es.name == "apertium eng-spa"


def test_ctranslate2_translator_names_its_model(ct2_models):
    from livedub.engines.mt.ctranslate2 import CTranslate2Translator, model_languages

    assert CTranslate2Translator(ct2_models["nllb"], "en", "fr").name == "ctranslate2 nllb-tiny en-fr"
    assert model_languages(ct2_models["nllb"]) == {"en", "es", "fr", "zh"}
    assert model_languages(ct2_models["m2m100"]) == {"en", "es", "fr"}
    assert model_languages(ct2_models["marian-multi"]) == {"es", "fr", "de"}
    assert model_languages(ct2_models["marian"]) == frozenset()  # a bilingual model names no language


# ---------------------------------------------------------------- choosing a route (pure: hops as data)

def _hop(source: str, target: str, backend: str = "apertium"):
    from livedub.engines.mt.routes import Hop

    return Hop(source, target, backend, f"{backend} {source}-{target}", neural=backend != "apertium")


def _route(hops, source, target, **kw):
    from livedub.engines.mt.routes import best_route

    route = best_route(hops, source, target, **kw)
    return route.name if route else None


def test_route_takes_a_direct_pair_over_any_chain():
    hops = [_hop("en", "es"), _hop("es", "it"), _hop("en", "it"), _hop("en", "pt", "bergamot"),
            _hop("pt", "it", "ctranslate2")]
    assert _route(hops, "en", "it") == "apertium en-it"  # one rule-based hop ties two neural ones: fewer hops


def test_route_prefers_neural_hops_and_then_fewest_hops():
    hops = [_hop("en", "es"), _hop("es", "it"), _hop("en", "pt", "bergamot"), _hop("pt", "it", "ctranslate2")]
    assert _route(hops, "en", "it") == "bergamot en-pt › ctranslate2 pt-it"
    hops = [_hop("en", "es"), _hop("es", "it"), _hop("en", "pt", "bergamot"), _hop("pt", "ca"), _hop("ca", "it")]
    assert _route(hops, "en", "it") == "apertium en-es › apertium es-it"  # 2 rule hops beat neural + 2 rule hops
    hops = [_hop("en", "es"), _hop("es", "it"), _hop("en", "pt", "bergamot"), _hop("pt", "it")]
    assert _route(hops, "en", "it") == "bergamot en-pt › apertium pt-it"  # equal hops: the neural one


def test_route_never_passes_through_the_source():
    from livedub.engines.mt.routes import whisper_hop

    hops = [_hop("fr", "en", "ctranslate2"), _hop("en", "fr", "ctranslate2"), _hop("fr", "es"),
            _hop("es", "fr"), _hop("es", "it")]
    assert _route(hops, "en", "it") == "ctranslate2 en-fr › apertium fr-es › apertium es-it"
    assert _route(hops, "fr", "it") == "apertium fr-es › apertium es-it"
    assert _route([*hops, whisper_hop("en")], "en", "es") == "ctranslate2 en-fr › apertium fr-es"  # no en → en


@needs_apertium
def test_no_installed_route_visits_a_language_twice():
    from livedub.engines import registry
    from livedub.engines.settings import Settings

    s = Settings()
    for row in registry.reach(s):
        for name in (row.text, row.speech):
            if name == "-":
                continue
            route = registry.mt_route(row.source, row.target, s, speech=name != row.text or row.source == "any")
            langs = [route.source, *(h.target for h in route.hops)]
            assert len(set(langs)) == len(langs) and langs[-1] == row.target, name


def test_route_is_none_when_nothing_reaches_the_target():
    hops = [_hop("en", "es"), _hop("es", "en"), _hop("ru", "uk")]
    assert _route(hops, "en", "uk") is None
    assert _route(hops, "ja", "es") is None
    chain = [_hop("a1", "b1"), _hop("b1", "c1"), _hop("c1", "d1"), _hop("d1", "e1")]
    assert _route(chain, "a1", "d1") == "apertium a1-b1 › apertium b1-c1 › apertium c1-d1"
    assert _route(chain, "a1", "e1") is None  # four rule-based hops: past MAX_HOPS


def test_route_keeps_a_shorter_dearer_way_that_can_go_further():
    """A language reached cheaply in two hops and dearly in one: only the one-hop way has room for two more."""
    hops = [_hop("a1", "b1", "bergamot"), _hop("b1", "c1", "bergamot"), _hop("a1", "c1"), _hop("c1", "d1"),
            _hop("d1", "e1")]
    assert _route(hops, "a1", "e1") == "apertium a1-c1 › apertium c1-d1 › apertium d1-e1"


def test_route_ties_go_through_the_best_connected_pivot():
    hops = [_hop("gl", "en"), _hop("en", "ca"), _hop("gl", "es"), _hop("es", "ca"), _hop("es", "it"),
            _hop("es", "fr"), _hop("es", "pt")]
    assert _route(hops, "gl", "ca") == "apertium gl-es › apertium es-ca"


def test_whisper_only_starts_a_route_from_speech():
    from livedub.engines.mt.routes import whisper_hop

    hops = [_hop("en", "es"), _hop("es", "fr"), _hop("fr", "es"), _hop("es", "en")]
    assert _route([*hops, whisper_hop("zh")], "zh", "es") == "whisper translate zh-en › apertium en-es"
    assert _route([*hops, whisper_hop("fr")], "fr", "en") == "whisper translate fr-en"  # one hop beats two
    assert _route([*hops, whisper_hop("fr")], "fr", "es") == "apertium fr-es"  # a direct pair beats whisper + one
    assert _route([*hops, whisper_hop("zh")], "fr", "en") == "apertium fr-es › apertium es-en"  # zh's audio only
    gl = [_hop("gl", "es"), _hop("es", "ca"), _hop("en", "ca"), whisper_hop("gl")]
    assert _route(gl, "gl", "ca") == "apertium gl-es › apertium es-ca"  # equal cost: no second whisper pass


# ---------------------------------------------------------------- pivot chains, run for real

@pytest.fixture(scope="module")
def en_it():
    from livedub.engines import registry
    from livedub.engines.settings import Settings

    return registry.translator("en", "it", Settings())


@needs_pivot_pairs
@pytest.mark.parametrize(
    ("target", "route", "expected"),
    [
        ("it", "apertium eng-spa › apertium spa-ita",
         ["Ciao.", "La casa è rossa.", "Ho un cane grande.", "", "Mangiamo pane e formaggio ogni mattina."]),
        ("fr", "apertium eng-spa › apertium es-fr",
         ["Salut.", "La maison est rouge.", "J'ai un chien grand.", "",
          "Nous mangeons du pain et fromage chaque matin."]),
    ],
)
def test_chain_translates_english_through_spanish(target, route, expected):
    """English → Italian and → French have no Debian pair: the chain pivots through Spanish, sentence for
    sentence. The expected text is what Apertium's installed pairs say (checked by hand: correct Italian and
    French, "chien grand" word order and all)."""
    from livedub.engines import registry
    from livedub.engines.mt.chain import ChainTranslator
    from livedub.engines.settings import Settings

    tr = registry.translator("en", target, Settings())
    assert isinstance(tr, ChainTranslator) and isinstance(tr, Translator)
    assert (tr.source, tr.target, tr.name) == ("en", target, route)
    english = ["Hello.", "The house is red.", "I have a big dog.", "", "We eat bread and cheese every morning."]
    assert tr.translate_sentences(english) == expected
    assert tr.translate(" ".join(english)) == " ".join(s for s in expected if s)
    assert tr.translate("  ") == ""


@needs_pivot_pairs
def test_chain_loads_its_hops_on_first_use_in_the_calling_thread(en_it):
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from livedub.engines.mt.apertium import ApertiumTranslator
    from livedub.engines.mt.chain import ChainTranslator
    from livedub.engines.mt.routes import Hop, Route

    missing = Route((Hop("en", "es", "apertium", "apertium eng-spa", False, lambda: ApertiumTranslator("en", "es")),
                     Hop("es", "ka", "apertium", "apertium spa-kat", False, lambda: ApertiumTranslator("es", "ka"))))
    chain = ChainTranslator(missing)  # nothing loaded yet, so nothing fails yet
    with pytest.raises(MissingModelError, match="apertium-spa-kat"):
        chain.translate("Hello.")
    with ThreadPoolExecutor(1, thread_name_prefix="mt-worker") as worker:
        out = worker.submit(en_it.translate, "The house is red.").result()
        pipes = worker.submit(lambda: [hop._pipe for hop in en_it.hops()]).result()
    assert out == "La casa è rossa."
    assert all(p is not None and p.alive for p in pipes)  # each hop's pipeline started and kept
    assert threading.current_thread() is threading.main_thread()
    en_it.close()
    assert all(hop._pipe is None for hop in en_it.hops())


def test_chain_needs_text_translators_on_every_hop():
    from livedub.engines.mt.chain import ChainTranslator
    from livedub.engines.mt.routes import Route, whisper_hop

    with pytest.raises(ValueError, match="text translators"):
        ChainTranslator(Route((whisper_hop("zh"), _hop("en", "es"))))


@needs_pivot_pairs
def test_user_models_join_the_routes_and_neural_wins(ct2_models):
    """A multilingual user model (tiny NLLB: en, es, fr, zh) is one neural hop between its languages, so it
    serves en → fr directly and zh speech → es without whisper; a language it lacks (it) is reached by its
    neural hop to Spanish, then Apertium."""
    from livedub.engines import registry
    from livedub.engines.mt.ctranslate2 import CTranslate2Translator
    from livedub.engines.settings import Settings

    s = Settings(mt_models={"any": ct2_models["nllb"]})
    en_fr = registry.translator("en", "fr", s)
    assert isinstance(en_fr, CTranslate2Translator) and en_fr.name == "ctranslate2 nllb-tiny en-fr"
    zh_es = registry.speech_route("zh", "es", s)
    assert not zh_es.whisper_to_english and zh_es.name == "ctranslate2 nllb-tiny zh-es"
    assert registry.mt_route("en", "it", s).name == "ctranslate2 nllb-tiny en-es › apertium spa-ita"
    assert registry.mt_route("fr", "it", s).name == "ctranslate2 nllb-tiny fr-es › apertium spa-ita"
    pair = Settings(mt_models={"pt-it": ct2_models["marian"]})  # a pair model (random weights, any text out)
    assert registry.mt_route("en", "it", pair).name == "bergamot en-pt › ctranslate2 opus-mt-en-es pt-it"


# ---------------------------------------------------------------- end to end: English speech dubbed into French

@needs_pivot_pairs
def test_speech_from_english_to_french_goes_through_the_chain(tmp_path, english_speech):
    """`livedub speech --to fr` on English Piper speech (which whisper hears word for word): there is no
    English-French pair, so the transcript's French comes from the Spanish pivot."""
    import json

    from livedub.engines.audio import SAMPLE_RATE, write_wav
    from livedub.realtime.cli import main

    gap = np.zeros(int(0.8 * SAMPLE_RATE), np.float32)
    pcm = np.concatenate([gap, english_speech("The house is very big."), gap, gap,
                          english_speech("My brother has a red car."), gap])
    src, wav, transcript = tmp_path / "talk_en.wav", tmp_path / "talk_fr.wav", tmp_path / "talk_fr.json"
    write_wav(src, pcm, SAMPLE_RATE)
    assert main(["speech", str(src), "--to", "fr", "-o", str(wav), "--transcript", str(transcript), "-q"]) == 0
    doc = json.loads(transcript.read_text())
    assert (doc["source_language"], doc["target_language"]) == ("en", "fr")
    english = " ".join(s["source_text"] for s in doc["segments"]).lower()
    french = " ".join(s["text"] for s in doc["segments"]).lower()
    assert "house" in english and "brother" in english
    for word in ("maison", "très", "grande", "frère", "voiture", "rouge"):  # Apertium: es → fr of eng → spa
        assert word in french, (word, french)
    for spanish in ("casa", "hermano", "coche"):  # the pivot's words must not leak through
        assert spanish not in french, (spanish, french)
    assert [s["route"] for s in doc["segments"]] == ["apertium eng-spa › apertium es-fr"] * 2
    assert wav.stat().st_size > 44
