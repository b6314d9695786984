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
    from livedub.realtime.factory import ModelPool

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
