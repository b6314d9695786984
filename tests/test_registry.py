"""The registry resolves every role to a model with its source, and says clearly what is missing."""

import json
import subprocess
import sys

import pytest

from livedub.engines import models, registry
from livedub.engines.errors import MissingModelError
from livedub.engines.settings import Settings, load_settings


def test_whisper_base_is_joined_once_and_verified(tmp_cache):
    first = models.whisper_base_dir.__wrapped__()
    assert first.parent == tmp_cache
    assert models.sha256_file(first / "model.bin") == models.WHISPER_BASE_SHA256
    assert (first / "config.json").exists() and (first / "tokenizer.json").exists()
    mtime = (first / "model.bin").stat().st_mtime_ns
    assert models.whisper_base_dir.__wrapped__() == first
    assert (first / "model.bin").stat().st_mtime_ns == mtime  # not joined again


def test_a_damaged_join_is_redone(tmp_cache):
    path = models.whisper_base_dir.__wrapped__()
    with open(path / "model.bin", "r+b") as f:
        f.truncate(1000)
    again = models.whisper_base_dir.__wrapped__()
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
    assert registry.translator("en", "es", s).name.startswith("apertium")
    assert registry.translator("fr", "en", s) is None  # whisper's translate task covers any → en
    with pytest.raises(MissingModelError, match="apertium|--mt-model"):
        registry.translator("en", "ja", s)


def test_synthesizer_choice():
    s = Settings()
    assert "piper" in registry.synthesizer("en", s).name.lower()
    assert registry.synthesizer("es", s).name.startswith("kokoro:")  # a neural voice where Piper has none
    assert "espeak" in registry.synthesizer("zh", s).name.lower()  # tones Kokoro cannot say: espeak-ng
    with pytest.raises(MissingModelError, match="no voice speaks"):
        registry.synthesizer("xx", s)


def test_config_file_and_environment_precedence(tmp_path, monkeypatch):
    cfg = tmp_path / "config.toml"
    cfg.write_text('[asr]\nmodel = "/from/config"\n[mt]\nen-de = "/mt/en-de"\n[tts]\nvoices = ["/v/a.onnx"]\n')
    s = load_settings(cfg)
    assert str(s.asr_model) == "/from/config" and s.origin["asr_model"] == "config"
    assert str(s.mt_models["en-de"]) == "/mt/en-de"
    monkeypatch.setenv("LIVEDUB_ASR_MODEL", "/from/env")
    s = load_settings(cfg)
    assert str(s.asr_model) == "/from/env" and s.origin["asr_model"] == "env"
    s = s.with_flags(asr_model="/from/flag")
    assert str(s.asr_model) == "/from/flag" and s.origin["asr_model"] == "flag"


def test_broken_config_is_a_clear_error(tmp_path):
    from livedub.engines.errors import LivedubError

    cfg = tmp_path / "config.toml"
    cfg.write_text("[asr\nmodel = ")
    with pytest.raises(LivedubError, match="not a valid TOML"):
        load_settings(cfg)


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


def test_models_command_shows_a_missing_user_checkpoint(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(json.dumps({}).replace("{}", '[lipsync]\ncheckpoint = "/nope/wav2lip_gan.pth"\n'))
    out = subprocess.run([sys.executable, "-m", "livedub.realtime.cli", "models", "--no-verify", "--config", str(cfg)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "wav2lip_gan.pth" in out.stdout and "MISSING" in out.stdout
