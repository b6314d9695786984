"""`livedub models get`: fetching catalog models from a Hugging Face Hub, verified, atomic and resumable, and
the fetched models then found without flags.

The Hub here is `FakeHub`: two HTTP servers on 127.0.0.1 that speak the part of the Hub's file API
huggingface_hub uses (`/api/models/{repo}/revision/{rev}?blobs=true` with the file listing, `HEAD`/`GET
/{repo}/resolve/{rev}/{path}` with `X-Repo-Commit`, `ETag`, `X-Linked-Etag`/`X-Linked-Size` and a redirect of
large files to a second, "CDN" origin that honours `Range`), reached through `HF_ENDPOINT`. Nothing here
touches the internet. What it serves is built from models installed here, so the fetched copies really load:
a tiny random NLLB-layout CTranslate2 model with only a tokenizer.json (as several NLLB repositories ship),
the embedded whisper tiny.en served as `whisper-small`, the embedded en_US joe Piper voice relabelled as the
French voice (its config says French: the test checks that a fetched voice is chosen and speaks, not how
French it sounds), and two Kokoro voice files written from the embedded Japanese styles under Spanish names.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import socket
import subprocess
import sys
import threading
from collections import defaultdict
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from test_mt import _save_random_transformer, _train_spm

from livedub.engines import catalog, registry
from livedub.engines.errors import MissingModelError
from livedub.engines.settings import Settings
from livedub.engines.tts.voices import KOKORO_BUNDLED_BY_LANGUAGE
from livedub.realtime.cli import main

NLLB_REPO = "JustFrederik/nllb-200-distilled-600M-ct2-int8"
WHISPER_REPO = "Systran/faster-whisper-small"
PIPER_REPO = "rhasspy/piper-voices"
KOKORO_REPO = "onnx-community/Kokoro-82M-v1.0-ONNX"
FR_VOICE = "fr/fr_FR/siwis/medium/fr_FR-siwis-medium"
ZH_VOICE = "zh/zh_CN/huayan/medium/zh_CN-huayan-medium"
LFS_SUFFIXES = (".bin", ".onnx", ".model")  # what the Hub's default .gitattributes puts in LFS


# ---------------------------------------------------------------- a Hub on 127.0.0.1


@dataclass(frozen=True)
class HubFile:
    data: bytes
    sha256: str
    git_sha1: str
    lfs: bool


def hub_file(path: str, data: bytes) -> HubFile:
    return HubFile(data, hashlib.sha256(data).hexdigest(),
                   hashlib.sha1(f"blob {len(data)}\0".encode() + data).hexdigest(), path.endswith(LFS_SUFFIXES))


class FakeHub:
    """The Hub's file API over `repos` (repo → path → HubFile), with faults to inject: `corrupt` paths are served
    with wrong bytes of the right length, `cut` sends the first N bytes of a path's next body and drops the
    connection, `dropping` drops every connection unanswered (the network gone)."""

    def __init__(self, repos: dict[str, dict[str, HubFile]]) -> None:
        self.repos = repos
        self.commits = {repo: hashlib.sha1(json.dumps(sorted((p, f.sha256) for p, f in files.items())).encode())
                        .hexdigest() for repo, files in repos.items()}
        self.blobs = {f.sha256: (repo, path) for repo, files in repos.items() for path, f in files.items() if f.lfs}
        self.corrupt: set[str] = set()
        self.cut: dict[str, int] = {}
        self.drop_after_cut = False
        self.dropping = False
        self.gets: list[tuple[str, str | None]] = []  # (path, Range) of every body request
        self.sent: dict[str, int] = defaultdict(int)  # body bytes sent per path
        self.api = ThreadingHTTPServer(("127.0.0.1", 0), self._handler("api"))
        self.cdn = ThreadingHTTPServer(("127.0.0.1", 0), self._handler("cdn"))
        for server in (self.api, self.cdn):
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.api.server_address[1]}"

    def close(self) -> None:
        for server in (self.api, self.cdn):
            server.shutdown()
            server.server_close()

    def _handler(self, role: str):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_HEAD(self) -> None:
                self._answer(head=True)

            def do_GET(self) -> None:
                self._answer(head=False)

            def _answer(self, head: bool) -> None:
                if hub.dropping:
                    self.close_connection = True  # no status line at all: the client sees the server vanish
                    return
                path = self.path.split("?")[0]
                if role == "cdn":
                    found = hub.blobs.get(path.removeprefix("/blob/"))
                    return self._body(*found, head=head) if found else self._error(404, "EntryNotFound")
                if m := re.fullmatch(r"/api/models/([^/]+/[^/]+)/revision/([^/]+)", path):
                    return self._listing(m[1], m[2])
                if m := re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path):
                    return self._resolve(m[1], m[2], m[3], head)
                self._error(404, "EntryNotFound")

            def _listing(self, repo: str, revision: str) -> None:
                if repo not in hub.repos:
                    return self._error(404, "RepoNotFound")
                siblings = [{"rfilename": p, "size": len(f.data), "blobId": f.git_sha1,
                             **({"lfs": {"sha256": f.sha256, "size": len(f.data), "pointerSize": 134}} if f.lfs
                                else {})} for p, f in sorted(hub.repos[repo].items())]
                self._json({"id": repo, "modelId": repo, "sha": hub.commits[repo], "siblings": siblings})

            def _resolve(self, repo: str, revision: str, quoted: str, head: bool) -> None:
                from urllib.parse import unquote

                path = unquote(quoted)
                if repo not in hub.repos:
                    return self._error(404, "RepoNotFound")
                if revision not in ("main", hub.commits[repo]):
                    return self._error(404, "RevisionNotFound")
                f = hub.repos[repo].get(path)
                if f is None:
                    return self._error(404, "EntryNotFound")
                if f.lfs:  # large files: the metadata on a redirect to another origin, as huggingface.co does
                    self.send_response(302)
                    self.send_header("Location", f"http://127.0.0.1:{hub.cdn.server_address[1]}/blob/{f.sha256}")
                    self.send_header("X-Repo-Commit", hub.commits[repo])
                    self.send_header("X-Linked-Etag", f'"{f.sha256}"')
                    self.send_header("X-Linked-Size", str(len(f.data)))
                    self.send_header("ETag", f'"{f.sha256}"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                return self._body(repo, path, head=head)

            def _body(self, repo: str, path: str, head: bool) -> None:
                f = hub.repos[repo][path]
                data = f.data
                if path in hub.corrupt:
                    data = bytes(b ^ 0xFF for b in data[:64]) + data[64:]
                start, end = 0, len(data) - 1
                if (wanted := self.headers.get("Range")) and (m := re.fullmatch(r"bytes=(\d+)-(\d*)", wanted)):
                    start, end = int(m[1]), int(m[2]) if m[2] else len(data) - 1
                body = data[start:end + 1]
                self.send_response(206 if wanted else 200)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("ETag", f'"{f.sha256 if f.lfs else f.git_sha1}"')
                if role == "api":
                    self.send_header("X-Repo-Commit", hub.commits[repo])
                if wanted:
                    self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
                self.end_headers()
                if head:
                    return
                hub.gets.append((path, wanted))
                cut = hub.cut.pop(path, None)
                if cut is not None and cut < len(body):
                    self.wfile.write(body[:cut])
                    self.wfile.flush()
                    hub.sent[path] += cut
                    hub.dropping = hub.drop_after_cut
                    self.close_connection = True
                    return
                self.wfile.write(body)
                hub.sent[path] += len(body)

            def _json(self, data: dict) -> None:
                raw = json.dumps(data).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def _error(self, status: int, code: str) -> None:
                raw = json.dumps({"error": code}).encode()
                self.send_response(status)
                self.send_header("X-Error-Code", code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        return Handler


# ---------------------------------------------------------------- what it serves


def _tokenizer_json_from_spm(spm_path: Path, out: Path, specials: list[str]) -> None:
    """A Hugging Face tokenizer.json with the same pieces and scores as a sentencepiece unigram model."""
    import sentencepiece as spm
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers

    sp = spm.SentencePieceProcessor(model_file=str(spm_path))
    vocab = [(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())]
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=sp.unk_id()))
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.add_special_tokens(specials)
    tokenizer.save(str(out))


def build_nllb_with_tokenizer_json(out: Path, spm_dir: Path) -> Path:
    """NLLB layout as some converted repositories ship it: tokenizer.json, no sentencepiece file."""
    out.mkdir(parents=True)
    spm_dir.mkdir(parents=True)
    languages = ["eng_Latn", "fra_Latn", "spa_Latn", "deu_Latn"]
    pieces = _train_spm(spm_dir / "sentencepiece.bpe.model", seed=3)
    _tokenizer_json_from_spm(spm_dir / "sentencepiece.bpe.model", out / "tokenizer.json", ["<pad>", *languages])
    vocab = [*pieces, "<pad>", *languages]
    _save_random_transformer(out, vocab, vocab, {"decoder_start_token": "</s>"}, seed=1)
    return out


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict:
    from livedub.engines import models

    root = tmp_path_factory.mktemp("hub-content")
    nllb = build_nllb_with_tokenizer_json(root / "nllb", root / "nllb-spm")
    whisper = models.whisper_tiny_en_dir()
    joe_model, joe_config = models.joe_voice_paths()
    french = json.loads(joe_config.read_text())
    french["language"] = {"code": "fr_FR", "family": "fr", "region": "FR"}
    french["espeak"] = {"voice": "fr"}
    with np.load(models.kokoro_data_paths()[1]) as styles:
        dora = np.asarray(styles["jf_alpha"], "<f4").reshape(-1, 256)
        alex = np.asarray(styles["jm_kumo"], "<f4").reshape(-1, 256)
    files = {
        NLLB_REPO: {**{p.name: p.read_bytes() for p in nllb.iterdir()}, "README.md": b"# tiny NLLB\n"},
        WHISPER_REPO: {p.name: p.read_bytes() for p in whisper.iterdir() if p.is_file()},
        PIPER_REPO: {f"{FR_VOICE}.onnx": joe_model.read_bytes(),
                     f"{FR_VOICE}.onnx.json": json.dumps(french).encode(),
                     "fr/fr_FR/siwis/medium/MODEL_CARD": b"# Model card\nlicense: test fixture\n",
                     # a stand-in, for the download only: its config asks for phonemes livedub cannot make offline
                     f"{ZH_VOICE}.onnx": b"not a voice " * 1000,
                     f"{ZH_VOICE}.onnx.json": json.dumps({"language": {"family": "zh"},
                                                          "phoneme_type": "pinyin"}).encode(),
                     "voices.json": b"{}"},
        KOKORO_REPO: {"voices/ef_dora.bin": dora.tobytes(), "voices/em_alex.bin": alex.tobytes(),
                      "README.md": b"# voices\n"},
    }
    repos = {repo: {p: hub_file(p, data) for p, data in content.items()} for repo, content in files.items()}
    return {"repos": repos, "spm": root / "nllb-spm" / "sentencepiece.bpe.model", "dora": dora, "alex": alex}


@pytest.fixture
def hub(built):
    server = FakeHub(built["repos"])
    yield server
    server.close()


def get(hub_endpoint: str, cache: Path, *names: str) -> tuple[int, str, str]:
    """The `livedub models get -q NAME…` program against the hub: (exit code, stdout, stderr), all it prints."""
    env = {**os.environ, "HF_ENDPOINT": hub_endpoint, "LIVEDUB_CACHE": str(cache),
           "LIVEDUB_CONFIG": str(cache.parent / "no-config.toml")}
    done = subprocess.run([sys.executable, "-m", "livedub.realtime.cli", "models", "get", "-q", *names],
                          capture_output=True, text=True, env=env, timeout=600)
    return done.returncode, done.stdout, done.stderr


def cache_listing(cache: Path) -> list[str]:
    return sorted(str(p.relative_to(cache)) for p in cache.rglob("*")) if cache.exists() else []


@pytest.fixture(scope="module")
def fetched(built, tmp_path_factory) -> dict:
    """One `livedub models get` of four catalog models into a fresh cache (shared by the 'found' tests)."""
    server = FakeHub(built["repos"])
    cache = tmp_path_factory.mktemp("fetched") / "cache"
    try:
        code, out, err = get(server.endpoint, cache, "small", "nllb-600m", "piper-fr", "kokoro-voices")
    finally:
        server.close()
    assert code == 0, err
    return {"cache": cache, "out": out, "commits": server.commits, "settings": Settings(cache=cache)}


# ---------------------------------------------------------------- the catalog


def test_catalog_whisper_repositories_are_faster_whispers_own():
    from faster_whisper.utils import _MODELS

    for entry in (e for e in catalog.CATALOG if e.kind == "asr"):
        assert _MODELS[entry.aliases[0]] == entry.repo


def test_get_list_shows_sizes_licences_and_the_nllb_restriction(tmp_path):
    code, out, _ = get("http://127.0.0.1:9", tmp_path / "cache", "--list")  # --list needs no network
    assert code == 0
    for entry in catalog.CATALOG:
        row = next(line for line in out.splitlines() if line.startswith(entry.name + " "))
        assert entry.licence in row and re.search(r"≈\d+\.\d+ [MG]B", row)
    assert "non-commercial use only" in out
    assert not (tmp_path / "cache").exists()


def test_unknown_names_and_no_names_are_one_line_errors(tmp_path):
    code, _, err = get("http://127.0.0.1:9", tmp_path / "cache", "whisper-huge")
    assert code == 1 and err.count("\n") == 1 and "unknown model whisper-huge" in err
    code, _, err = get("http://127.0.0.1:9", tmp_path / "cache")
    assert code == 1 and "--list" in err


# ---------------------------------------------------------------- fetching


def test_get_installs_each_model_verified_and_says_the_licence_first(fetched, built):
    cache, out = fetched["cache"], fetched["out"]
    lines = out.splitlines()
    note = next(i for i, line in enumerate(lines) if line.startswith("nllb-600m: note:"))
    installed = next(i for i, line in enumerate(lines) if line.startswith("nllb-600m: verified and installed"))
    assert note < installed and "non-commercial" in lines[note]
    for name, repo in [("whisper-small", WHISPER_REPO), ("nllb-600m", NLLB_REPO), ("piper-fr", PIPER_REPO),
                       ("kokoro-voices", KOKORO_REPO)]:
        folder = catalog.fetched_dir(cache, name)
        record = catalog.manifest(folder)
        assert record["repo"] == repo and record["commit"] == fetched["commits"][repo]
        for path, meta in record["files"].items():
            served = built["repos"][repo][path]
            assert (folder / path).read_bytes() == served.data
            assert meta.get("sha256", meta.get("git_sha1")) in (served.sha256, served.git_sha1)
    assert not (catalog.fetched_dir(cache, "nllb-600m") / "README.md").exists()  # only the files the model needs
    assert not (catalog.fetched_dir(cache, "piper-fr") / "voices.json").exists()
    leftovers = [p for p in cache_listing(cache) if ".partial" in p or p.endswith((".part", ".lock"))]
    assert leftovers == []


def test_getting_a_fetched_model_again_downloads_nothing(fetched, hub):
    code, out, _ = get(hub.endpoint, fetched["cache"], "nllb-600m")
    assert code == 0 and "already fetched" in out and hub.gets == []


def test_offline_get_fails_with_one_line_and_writes_nothing(tmp_path):
    with socket.socket() as s:  # a port nothing listens on: the connection is refused, as with no network
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    cache = tmp_path / "cache"
    code, out, err = get(closed, cache, "nllb-600m")
    assert code == 1 and err.count("\n") == 1
    assert err.startswith("livedub: error: cannot reach the Hugging Face Hub") and "nothing was written" in err
    assert cache_listing(cache) == []


@pytest.mark.parametrize("path", ["model.bin", "tokenizer.json"])  # sha256 (LFS) and git blob sha1 (small file)
def test_a_corrupted_download_is_refused_and_nothing_lands(hub, tmp_path, path):
    cache = tmp_path / "cache"
    hub.corrupt.add(path)
    code, _, err = get(hub.endpoint, cache, "nllb-600m")
    assert code == 1 and err.count("\n") == 1 and f"{path}: the download does not match the Hub's" in err
    assert catalog.fetched_dir(cache, "nllb-600m") is None and catalog.fetched_nllb(cache) is None
    assert not any(p.endswith(".part") for p in cache_listing(cache))  # the bad bytes are deleted
    route = registry.mt_route("en", "fr", Settings(cache=cache))
    assert route is None or "nllb-600m" not in route.name

    hub.corrupt.clear()
    before = list(hub.gets)
    code, _, err = get(hub.endpoint, cache, "nllb-600m")
    assert code == 0, err
    again = [p for p, _ in hub.gets[len(before):]]
    assert path in again and "config.json" not in again  # files verified by the failed run are kept
    assert catalog.fetched_nllb(cache) is not None


def test_a_dropped_connection_resumes_with_a_range_request(hub, tmp_path):
    cache = tmp_path / "cache"
    size = len(hub.repos[WHISPER_REPO]["model.bin"].data)
    hub.cut["model.bin"] = 25_000_000
    code, _, err = get(hub.endpoint, cache, "small")
    assert code == 0, err
    ranges = [r for p, r in hub.gets if p == "model.bin"]
    assert ranges[0] is None and ranges[1] is not None, "the retry fetched model.bin from its first byte again"
    start = int(re.fullmatch(r"bytes=(\d+)-", ranges[1])[1])
    # huggingface_hub writes in 10 MiB chunks: what was received past the last whole chunk is fetched again
    assert 0 < start <= 25_000_000 and hub.sent["model.bin"] == 25_000_000 + size - start
    assert catalog.fetched_whisper(cache, "small") is not None


def test_an_interrupted_fetch_resumes_in_the_next_run(hub, tmp_path):
    cache = tmp_path / "cache"
    size = len(hub.repos[WHISPER_REPO]["model.bin"].data)
    hub.cut["model.bin"] = 25_000_000
    hub.drop_after_cut = True  # the network goes away mid-file and stays away for this run
    code, _, err = get(hub.endpoint, cache, "small")
    assert code == 1 and err.count("\n") == 1
    assert "cannot reach the Hugging Face Hub" in err and "again to resume" in err
    assert catalog.fetched_whisper(cache, "small") is None
    kept = [p for p in (cache / "models").rglob("*.part")]
    assert len(kept) == 1 and kept[0].parent.name == ".whisper-small.partial"
    kept_bytes = kept[0].stat().st_size  # huggingface_hub writes whole 10 MiB chunks: the rest comes again
    assert 0 < kept_bytes <= 25_000_000
    with pytest.raises(MissingModelError, match="not fetched yet"):
        registry.asr_model_dir(Settings(asr_model=Path("small"), cache=cache))

    hub.dropping = hub.drop_after_cut = False
    first_run = hub.sent["model.bin"]
    code, out, err = get(hub.endpoint, cache, "small")
    assert code == 0, err
    assert "resuming" in out
    resumed = [r for p, r in hub.gets if p == "model.bin"][-1]
    assert resumed is not None, "the next run fetched model.bin from its first byte again"
    start = int(re.fullmatch(r"bytes=(\d+)-", resumed)[1])
    assert start == kept_bytes and hub.sent["model.bin"] - first_run == size - start
    folder = catalog.fetched_whisper(cache, "small")
    assert (folder / "model.bin").read_bytes() == hub.repos[WHISPER_REPO]["model.bin"].data


def test_a_repository_without_the_catalog_files_is_refused(hub, tmp_path):
    cache = tmp_path / "cache"
    code, _, err = get(hub.endpoint, cache, "piper-de")  # the hub's piper-voices holds only the French voice
    assert code == 1 and err.count("\n") == 1 and "needs an update" in err
    assert cache_listing(cache) == []


def test_a_voice_that_would_download_at_run_time_is_not_installed(hub, tmp_path):
    cache = tmp_path / "cache"
    code, _, err = get(hub.endpoint, cache, "piper-zh")
    assert code == 1 and err.count("\n") == 1 and "pinyin phonemes" in err and "nothing was installed" in err
    assert cache_listing(cache) == ["models"]  # neither the voice nor its partial folder
    assert all(v.language != "zh" for v in registry.piper_voices(Settings(cache=cache)))


# ---------------------------------------------------------------- found without flags


def test_fetched_nllb_translates_every_pair_it_covers_without_flags(fetched, tmp_path):
    settings = fetched["settings"]
    before = registry.mt_route("en", "fr", Settings(cache=tmp_path))
    assert before is None or "nllb" not in before.name
    for source, target in [("en", "fr"), ("fr", "de"), ("es", "en")]:
        route = registry.mt_route(source, target, settings)
        assert route.name == f"ctranslate2 nllb-600m {source}-{target}"  # one neural hop, no pivot
    translator = registry.translator("en", "fr", settings)
    assert translator.layout.source_spm.name == "tokenizer.json"
    assert isinstance(translator.translate("The red house."), str)

    out = io.StringIO()
    with pytest.MonkeyPatch.context() as env, contextlib.redirect_stdout(out):
        env.setenv("LIVEDUB_CACHE", str(fetched["cache"]))
        env.setenv("LIVEDUB_CONFIG", str(tmp_path / "none.toml"))
        assert main(["models", "--no-verify"]) == 0
    assert "fetched: nllb-600m" in out.getvalue()
    assert re.search(r"^fr\s+en\s+ctranslate2 nllb-600m en-fr", out.getvalue(), re.M)


def test_tokenizer_json_splits_text_as_the_sentencepiece_model(fetched, built):
    import sentencepiece as spm

    from livedub.engines.mt.ctranslate2 import _TokenizerJson

    folder = catalog.fetched_nllb(fetched["cache"])
    adapter = _TokenizerJson(folder / "tokenizer.json")
    sp = spm.SentencePieceProcessor(model_file=str(built["spm"]))
    for text in ["The red house.", "A big dog eats bread in the garden.", "we see three old cars"]:
        pieces = adapter.encode(text, out_type=str)
        assert pieces == sp.encode(text, out_type=str)
        assert adapter.decode(pieces) == sp.decode(pieces)


def test_fetched_whisper_is_chosen_by_name(fetched, english_speech):
    from livedub.engines.asr.whisper import WhisperRecognizer

    settings = Settings(asr_model=Path("small"), cache=fetched["cache"])
    folder = registry.asr_model_dir(settings)
    assert folder == catalog.fetched_whisper(fetched["cache"], "whisper-small")
    speech = english_speech("Good morning everyone.")
    fetched_words = WhisperRecognizer(folder).transcribe(speech).text
    assert "morning" in fetched_words.lower()
    assert fetched_words == registry.recognizer(Settings(), fast=True).transcribe(speech).text  # the same model
    with pytest.raises(MissingModelError, match=r"livedub models get whisper-medium"):
        registry.asr_model_dir(Settings(asr_model=Path("medium"), cache=fetched["cache"]))


def test_fetched_piper_voice_speaks_its_language_by_default(fetched):
    voice = registry.synthesizer("fr", fetched["settings"], engine="piper")
    assert voice.model_path == catalog.fetched_dir(fetched["cache"], "piper-fr") / f"{FR_VOICE}.onnx"
    assert registry.synthesizer("fr", fetched["settings"]).name == voice.name  # Piper first, without flags
    speech = voice.synthesize("Bonjour à tous.")
    assert len(speech.pcm) > 0.3 * speech.sample_rate and np.abs(speech.pcm).max() > 0.05


def test_fetched_kokoro_voices_are_native_voices(fetched, built, tmp_path):
    if not registry.kokoro_serves("es"):
        pytest.skip("Kokoro or espeak-ng Spanish is not installed here")
    from livedub.engines.tts.kokoro import KokoroSynthesizer, _file_styles

    kokoro = [v for v in registry.voices_for("es", fetched["settings"]) if isinstance(v, KokoroSynthesizer)]
    assert [v.voice for v in kokoro] == ["ef_dora"] and kokoro[0].register == "high"
    low = [v for v in registry.voices_for("es", fetched["settings"], pitch_hz=110.0)
           if isinstance(v, KokoroSynthesizer)]
    assert low[0].voice == "em_alex" and low[0].register == "low"
    assert np.array_equal(_file_styles(low[0].voice_file), built["alex"])
    speech = kokoro[0].synthesize("Hola.")
    assert np.abs(speech.pcm).max() > 0.05
    default = [v for v in registry.voices_for("es", Settings(cache=tmp_path)) if isinstance(v, KokoroSynthesizer)]
    assert default[0].voice == KOKORO_BUNDLED_BY_LANGUAGE["es"][0] and default[0].voice_file is None


def test_calls_and_file_jobs_never_load_the_downloader(fetched):
    """The download module stays out of every command but `models get`: it is imported only there."""
    script = (
        "import sys; from pathlib import Path\n"
        "from livedub.realtime import cli, pool, session\n"
        "from livedub.engines import registry\n"
        "from livedub.engines.settings import Settings\n"
        f"s = Settings(cache=Path({str(fetched['cache'])!r}))\n"
        "registry.translator('en', 'fr', s); registry.synthesizer('fr', s); list(registry.entries(s, verify=False))\n"
        "cli.build_parser()\n"
        "assert 'livedub.engines.hub' not in sys.modules, 'the downloader was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
