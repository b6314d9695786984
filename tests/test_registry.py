"""The registry resolves every role to a model with its source, and says clearly what is missing."""

import json
import subprocess
import sys

import pytest

from livedub.engines import models, registry
from livedub.engines.errors import MissingModelError
from livedub.engines.settings import Settings, load_settings


def test_whisper_base_is_joined_once_and_verified(tmp_path, monkeypatch):
    """Joined into the cache the settings name; the environment (the CLI reads it) points elsewhere."""
    monkeypatch.setenv("LIVEDUB_CACHE", str(tmp_path / "from-env"))
    cache = tmp_path / "cache"
    first = registry.asr_model_dir(Settings(cache=cache))
    assert first == cache / "whisper-base" and not (tmp_path / "from-env").exists()
    assert models.sha256_file(first / "model.bin") == models.WHISPER_BASE_SHA256
    assert (first / "config.json").exists() and (first / "tokenizer.json").exists()
    mtime = (first / "model.bin").stat().st_mtime_ns
    assert models.whisper_base_dir.__wrapped__(cache) == first
    assert (first / "model.bin").stat().st_mtime_ns == mtime  # not joined again


def test_a_damaged_join_is_redone(tmp_cache):
    path = models.whisper_base_dir.__wrapped__(tmp_cache)
    with open(path / "model.bin", "r+b") as f:
        f.truncate(1000)
    again = models.whisper_base_dir.__wrapped__(tmp_cache)
    assert models.sha256_file(again / "model.bin") == models.WHISPER_BASE_SHA256


def test_embedded_models_resolve():
    assert (models.whisper_tiny_en_dir() / "model.bin").exists()
    onnx, config = models.joe_voice_paths()
    assert onnx.exists() and config.exists()


def test_missing_user_asr_model_names_the_fix(tmp_path):
    with pytest.raises(MissingModelError, match="--asr-model"):
        registry.asr_model_dir(Settings(asr_model=tmp_path / "nowhere"))


def test_missing_user_voice_names_the_fix(tmp_path):
    with pytest.raises(MissingModelError, match="--voice"):
        registry.piper_voices(Settings(voices=(tmp_path / "de_DE-x.onnx",)))


def test_translator_choice():
    s = Settings()
    assert registry.translator("en", "en", s).translate("Hello there.") == "Hello there."
    assert ("en", "es") in registry.apertium_pairs()
    assert registry.translator("en", "es", s).name == "apertium eng-spa"
    assert registry.translator("en", "pt", s).name == "bergamot en-pt"  # neural, embedded
    assert registry.translator("zh", "en", s) is None  # no text route: whisper's translate task, from the speech
    with pytest.raises(MissingModelError, match="no chain of the installed ones reaches it.*--mt-model en-ja=DIR"):
        registry.translator("en", "ja", s)


def _installed(*modes: str) -> bool:
    return set(modes) <= set(registry.apertium_modes().values())


needs_makefile_pairs = pytest.mark.skipif(
    not _installed("eng-spa", "eng-cat", "en-gl", "spa-ita", "es-fr", "fr-es", "es-pt", "gl-es", "spa-cat"),
    reason="the Makefile's Apertium pairs are not installed (make system)",
)


@needs_makefile_pairs
@pytest.mark.parametrize(("target", "route"), [
    ("es", "apertium eng-spa"),
    ("pt", "bergamot en-pt"),
    ("ca", "apertium eng-cat"),
    ("gl", "apertium en-gl"),
    ("it", "apertium eng-spa › apertium spa-ita"),
    ("fr", "apertium eng-spa › apertium es-fr"),
])
def test_english_reaches_the_languages_of_calls_out_of_the_box(target, route):
    tr = registry.translator("en", target, Settings())
    assert (tr.source, tr.target, tr.name) == ("en", target, route)
    speech = registry.speech_route("en", target, Settings())  # English speech: never through whisper's English
    assert not speech.whisper_to_english and speech.name == route


@needs_makefile_pairs
def test_speech_routes_weigh_whisper_against_text_routes():
    s = Settings()
    zh_es = registry.speech_route("zh", "es", s)  # no text route at all: whisper's English, then Apertium
    assert zh_es.whisper_to_english and zh_es.name == "whisper translate zh-en › apertium eng-spa"
    assert (zh_es.translator.source, zh_es.translator.target) == ("en", "es")
    assert "casa" in zh_es.translator.translate("The house is red.")
    fr_en = registry.speech_route("fr", "en", s)  # one whisper pass beats two rule-based hops
    assert fr_en.whisper_to_english and fr_en.translator is None and fr_en.name == "whisper translate fr-en"
    assert registry.translator("fr", "en", s).name == "apertium fr-es › apertium spa-eng"  # text has no audio
    es_fr = registry.speech_route("es", "fr", s)  # a direct pair beats whisper + a hop
    assert not es_fr.whisper_to_english and es_fr.name == "apertium es-fr"
    assert "maison" in es_fr.translator.translate("La casa es roja.")
    gl_ca = registry.speech_route("gl", "ca", s)  # equal cost: no second whisper pass
    assert not gl_ca.whisper_to_english and gl_ca.name == "apertium gl-es › apertium spa-cat"
    de_fr = registry.speech_route("de", "fr", s)
    assert de_fr.whisper_to_english and de_fr.translator.name == "apertium eng-spa › apertium es-fr"
    same = registry.speech_route("es", "es", s)
    assert not same.whisper_to_english and same.translator.translate(" Hola. ") == "Hola."
    with pytest.raises(MissingModelError, match=r"en → de \(directly, or through whisper's English"):
        registry.speech_route("en", "de", s)


def test_synthesizer_choice():
    s = Settings()
    assert "piper" in registry.synthesizer("en", s).name.lower()
    assert registry.synthesizer("es", s).name.startswith("kokoro:")  # a neural voice where Piper has none
    assert "espeak" in registry.synthesizer("zh", s).name.lower()  # tones Kokoro cannot say: espeak-ng
    with pytest.raises(MissingModelError, match="no voice speaks"):
        registry.synthesizer("xx", s)


def test_config_file_and_environment_precedence(tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text('[asr]\nmodel = "/from/config"\n[mt]\nen-de = "/mt/en-de"\n[tts]\nvoices = ["/v/a.onnx"]\n')
    s = load_settings(cfg, environ={})
    assert str(s.asr_model) == "/from/config" and s.origin["asr_model"] == "config"
    assert str(s.mt_models["en-de"]) == "/mt/en-de"
    s = load_settings(cfg, environ={"LIVEDUB_ASR_MODEL": "/from/env"})
    assert str(s.asr_model) == "/from/env" and s.origin["asr_model"] == "env"
    s = s.with_flags(asr_model="/from/flag")
    assert str(s.asr_model) == "/from/flag" and s.origin["asr_model"] == "flag"


def test_broken_config_is_a_clear_error(tmp_path):
    from livedub.engines.errors import LivedubError

    cfg = tmp_path / "config.toml"
    cfg.write_text("[asr\nmodel = ")
    with pytest.raises(LivedubError, match="not a valid TOML"):
        load_settings(cfg, environ={})


def test_the_environment_is_read_by_the_cli_only(tmp_path, monkeypatch):
    """The cache and the config file come from the environment the CLI passes; engines take `Settings` as
    they are given and never look at the process environment themselves."""
    (tmp_path / "cfg.toml").write_text('[asr]\nmodel = "/from/file"\n')
    environ = {"LIVEDUB_CACHE": str(tmp_path / "c"), "LIVEDUB_CONFIG": str(tmp_path / "cfg.toml")}
    s = load_settings(environ=environ)
    assert s.cache == tmp_path / "c" and str(s.asr_model) == "/from/file"
    xdg = load_settings(environ={"XDG_CACHE_HOME": str(tmp_path / "x"), "XDG_CONFIG_HOME": str(tmp_path / "none")})
    assert xdg.cache == tmp_path / "x" / "livedub" and xdg.asr_model is None
    monkeypatch.setenv("LIVEDUB_CACHE", str(tmp_path / "from-env"))
    monkeypatch.setenv("LIVEDUB_ASR_MODEL", "/from/env")
    plain = Settings()
    assert plain.cache != tmp_path / "from-env" and plain.asr_model is None


def test_models_command_prints_every_role(tmp_path):
    env = {"LIVEDUB_CONFIG": str(tmp_path / "none.toml"), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-m", "livedub.realtime.cli", "models"], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    for needle in ("whisper-base", "tiny.en", "en_US-joe-medium", "espeak-ng", "apertium eng-spa", "viseme",
                   "sha256 ok"):
        assert needle in text, needle
    assert "Traceback" not in out.stderr
    routes = text[text.index("translation routes"):].splitlines()
    assert any(r.split()[:2] == ["es", "en"] and "apertium eng-spa" in r for r in routes)
    assert any(r.split()[:3] == ["es", "any", "(speech)"] and "whisper translate any-en › apertium eng-spa" in r
               for r in routes)
    if _installed("eng-spa", "spa-ita"):
        assert any(r.split()[:2] == ["it", "en"] and "apertium eng-spa › apertium spa-ita" in r for r in routes)


def test_models_command_shows_a_missing_user_checkpoint(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(json.dumps({}).replace("{}", '[lipsync]\ncheckpoint = "/nope/wav2lip_gan.pth"\n'))
    out = subprocess.run([sys.executable, "-m", "livedub.realtime.cli", "models", "--no-verify", "--config", str(cfg)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "wav2lip_gan.pth" in out.stdout and "MISSING" in out.stdout
