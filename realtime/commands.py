"""What each `livedub` subcommand does (argument parsing lives in cli.py)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from livedub.engines import registry
from livedub.engines.audio import SAMPLE_RATE, decode_audio, resample, write_wav
from livedub.engines.errors import LivedubError
from livedub.engines.metrics import format_table
from livedub.engines.settings import Settings, config_path, load_settings

from .files import atomic_output

log = logging.getLogger("livedub.cli")

CONFIG_HELP = f"""\
config file ({config_path()}), all keys optional:

  [asr]
  model = "/models/faster-whisper-small"        # CTranslate2 whisper directory
  [mt]
  en-de = "/models/opus-mt-en-de-ct2"            # pair → CTranslate2 model directory
  any = "/models/nllb-200-distilled-600M-ct2"    # multilingual NLLB / M2M100
  [tts]
  voices = ["/voices/de_DE-thorsten-medium.onnx"]
  [lipsync]
  checkpoint = "/models/wav2lip_gan.pth"
  syncnet = "/models/syncnet_v2.model"

environment: LIVEDUB_ASR_MODEL, LIVEDUB_MT_MODELS ("en-de=DIR:any=DIR"), LIVEDUB_VOICES ("a.onnx:b.onnx"),
LIVEDUB_WAV2LIP, LIVEDUB_SYNCNET, LIVEDUB_CONFIG, LIVEDUB_CACHE. Flags beat variables beat the file.
"""

DEMO_TEXT = (
    "Hello, and welcome to livedub. This message was spoken in English and translated into Spanish. "
    "The weather is nice today, and the house by the river is very big."
)
DEMO_TEXT_ES = "Hola a todos. Hoy hace buen tiempo, y la casa junto al río es muy grande."


def settings_from(args: argparse.Namespace) -> Settings:
    """Config file + environment, overridden by this command's flags."""
    settings = load_settings(Path(args.config) if getattr(args, "config", None) else None)
    mt: dict[str, Path] = {}
    for item in getattr(args, "mt_model", []) or []:
        pair, sep, path = item.partition("=")
        if not sep or not pair or not path:
            raise LivedubError(f"--mt-model {item!r}: expected PAIR=DIR, e.g. en-de=/models/opus-mt-en-de")
        mt[pair.strip()] = Path(path)
    return settings.with_flags(
        asr_model=getattr(args, "asr_model", None), mt_models=mt, voices=getattr(args, "voice", None) or ()
    )


def check_speeds(args: argparse.Namespace) -> None:
    if not 0.5 <= args.min_speed <= 1.0 <= args.max_speed <= 2.0:
        raise LivedubError("speeds must satisfy 0.5 <= --min-speed <= 1 <= --max-speed <= 2")


def progress_bar(args: argparse.Namespace, desc: str, unit: str):
    from tqdm import tqdm

    return tqdm(desc=desc, unit=unit, disable=args.quiet, file=sys.stderr, leave=False)


def speech(args: argparse.Namespace) -> int:
    """livedub speech IN --to LANG -o OUT.wav: the translated speech, sentence by sentence in its slot."""
    from .speech import SpeechDubber

    check_speeds(args)
    settings = settings_from(args)
    started = time.perf_counter()
    pcm = decode_audio(args.input)
    dubber = SpeechDubber(args.to, source=args.source, settings=settings, min_speed=args.min_speed,
                          max_speed=args.max_speed, mt=args.mt)
    with progress_bar(args, "dubbing", "sentence") as bar:
        result = dubber.dub(pcm, progress=bar.update, total=lambda n: (setattr(bar, "total", n), bar.refresh()))
    track = result.track
    with dubber.times.stage("write"):
        audio = track.render(0.0, max(result.duration, track.end))
        with atomic_output(args.output) as tmp:
            write_wav(tmp, audio, track.output_rate)
        if args.transcript:
            _write_transcript(args.transcript, result, args.input)
    if not args.quiet:
        print(f"{args.output}: {len(result.segments)} sentences, {result.source_language} → {result.target_language}, "
              f"{len(audio) / track.output_rate:.1f} s (source {result.duration:.1f} s) "
              f"in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        print(dubber.times.table(result.duration), file=sys.stderr)
    return 0


def _write_transcript(path: str, result, source: str) -> None:
    doc = {
        "source": str(source),
        "source_language": result.source_language,
        "target_language": result.target_language,
        "source_duration": round(result.duration, 3),
        "segments": [s.as_dict() for s in result.segments],
        "stage_seconds": result.times.as_dict(),
    }
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(doc, ensure_ascii=False, indent=2) + "\n")


def models(args: argparse.Namespace) -> int:
    """livedub models: a table of every role's model and where it came from."""
    settings = settings_from(args)
    rows = [["role", "model", "languages", "source", "size", "verified"]]
    for e in registry.entries(settings, verify=not args.no_verify):
        rows.append([e.role, e.model, e.languages, e.source, registry.human_size(e.size), e.verified])
    print(format_table(rows))
    return 0


def demo(args: argparse.Namespace) -> int:
    """Both directions with embedded models only: EN → ES (Apertium + espeak-ng) and ES → EN (whisper's
    translate task + Piper), each lip-synced onto a public-domain face photo with the viseme engine."""
    import cv2
    import skimage.data

    from .cli import main as livedub

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    face = out / "face.png"  # NASA portrait of Eileen Collins, public domain, shipped with scikit-image
    cv2.imwrite(str(face), skimage.data.astronaut()[:, :, ::-1])
    samples = [("en", DEMO_TEXT, 1.0, "es", "auto"), ("es", DEMO_TEXT_ES, 0.85, "en", "whisper")]
    quiet = ["-q"] if args.quiet else []
    for source, text, speed, target, mt in samples:
        voice = registry.synthesizer(source, Settings())
        speech_in = voice.synthesize(text, speed=speed)
        sample = out / f"sample_{source}.wav"
        write_wav(sample, speech_in.pcm, speech_in.sample_rate)
        print(f"\n== {source} → {target}: {sample} ({speech_in.duration:.1f} s, {voice.name})", file=sys.stderr)
        video, report = out / f"demo_{target}.mp4", out / f"demo_{target}.json"
        code = livedub(["translate", str(face), "--audio", str(sample), "--to", target, "--from", source, "--mt", mt,
                        "-o", str(video), "--subs", "--report", str(report), *quiet])
        if code:
            return code
        for seg in json.loads(report.read_text())["segments"]:
            print(f"  [{seg['source_start']:5.2f}s] {seg['source_text']}\n"
                  f"  → [{seg['start']:5.2f}s ×{seg['speed']:.2f}] {seg['text']}")
        print(f"wrote {video} (+ subtitles {video.stem}.{source}/.{target}.srt/.vtt, report {report.name})")
    return 0


def parse_box(text: str | None) -> tuple[int, int, int, int] | None:
    """--box "y1 y2 x1 x2" (the reference's order) → x1, y1, x2, y2; -1 values are not allowed."""
    if not text:
        return None
    try:
        y1, y2, x1, x2 = (int(v) for v in text.replace(",", " ").split())
    except ValueError:
        raise LivedubError(f"--box {text!r}: expected four integers 'top bottom left right'") from None
    if not (0 <= y1 < y2 and 0 <= x1 < x2):
        raise LivedubError(f"--box {text!r}: need 0 <= top < bottom and 0 <= left < right")
    return x1, y1, x2, y2


PREFILL_SECONDS = 10.0  # of the input video scanned for mouth exemplars before dubbing starts


def lip_engine(args: argparse.Namespace, settings: Settings, video=None):
    """The engine the flags ask for. Default: Wav2Lip with a checkpoint; else the exemplar engine for video
    inputs or a saved bank (the speaker's own mouths, viseme warp until enough are seen); else viseme."""
    checkpoint = getattr(args, "checkpoint", None) or settings.wav2lip_checkpoint
    bank_path = getattr(args, "bank", None)
    is_video = video is not None and not video.info.is_image
    name = args.engine or ("wav2lip" if checkpoint else "exemplar" if (is_video or bank_path) else "viseme")
    if name == "wav2lip":
        if not checkpoint:
            raise LivedubError("--engine wav2lip needs --checkpoint wav2lip_gan.pth (or LIVEDUB_WAV2LIP)")
        from livedub.engines.lipsync.wav2lip import Wav2LipEngine

        return Wav2LipEngine(checkpoint=Path(checkpoint), pads=tuple(args.pads), int8=args.int8,
                             backend=getattr(args, "engine_backend", "auto"))
    if name == "exemplar":
        from livedub.engines.lipsync.exemplar import ExemplarEngine
        from livedub.engines.lipsync.exemplar_bank import MouthBank

        bank = MouthBank.load(bank_path) if bank_path and Path(bank_path).exists() else MouthBank()
        engine = ExemplarEngine(bank, learn=True)
        if is_video and not bank.ready:
            _prefill_bank(engine, video, args)
        return engine
    from livedub.engines.lipsync.viseme import VisemeEngine

    return VisemeEngine()


def _prefill_bank(engine, video, args: argparse.Namespace) -> None:
    """Collect the speaker's mouths from the video's first seconds, so exemplars are used from frame one."""
    fps = video.info.fps
    n = int(min(video.info.duration, PREFILL_SECONDS) * fps)
    tracker = face_tracker(args, fps)
    step = max(1, int(round(fps / 10)))  # ~10 looks a second: mouths change faster than that rarely matters
    for i, frame in enumerate(video.frames(n)):
        if i % step == 0:
            engine.learn([frame], [tracker.track(frame, timestamp=i / fps)])
    log.info("mouth bank: %d exemplars from the first %.0f s (ready: %s)", len(engine.bank), n / fps,
             engine.bank.ready)


def save_bank(engine, args: argparse.Namespace) -> None:
    """--bank FILE: keep what this run learned of the speaker's mouth for the next run or call."""
    if getattr(args, "bank", None) and getattr(engine, "bank", None) is not None:
        engine.bank.save(args.bank)


def face_tracker(args: argparse.Namespace, fps: float):
    from livedub.engines.face.mediapipe_tracker import MediapipeFaceTracker

    return MediapipeFaceTracker(smoothing=0.0 if args.nosmooth else 0.5, fps=fps, fixed_box=parse_box(args.box))


def lipsync(args: argparse.Namespace) -> int:
    """livedub lipsync --face VIDEO|IMAGE --audio AUDIO -o OUT.mp4."""
    import math

    from livedub.engines.asr.vad import speech_spans
    from livedub.engines.errors import BadInputError
    from livedub.engines.lipsync import PcmTimeline
    from livedub.engines.metrics import StageTimes

    from .face_dub import write_dubbed_video
    from .video import FaceVideo

    settings = settings_from(args).with_flags(wav2lip_checkpoint=args.checkpoint)
    times = StageTimes()
    started = time.perf_counter()
    with times.stage("decode"):
        video = FaceVideo(args.face, fps=args.fps, resize_factor=args.resize_factor)
        audio_out = decode_audio(args.audio, 48_000)  # decoded once; the analysis copy is resampled
        pcm = resample(audio_out, 48_000, SAMPLE_RATE)
    with times.stage("vad"):
        if not speech_spans(pcm):
            raise BadInputError(f"{args.audio}: no speech found (silence or noise): nothing to lip-sync")
    engine = lip_engine(args, settings, video)
    fps = video.info.fps
    n_frames = max(1, math.ceil(len(pcm) / 16_000 * fps))
    tracker = face_tracker(args, fps)
    with progress_bar(args, "lip-sync", "frame") as bar:
        bar.total = n_frames
        stats = write_dubbed_video(args.output, video, n_frames, PcmTimeline(pcm), audio_out, 48_000, engine,
                                   tracker, times=times, progress=bar.update)
    save_bank(engine, args)
    if not args.quiet:
        print(f"{args.output}: {stats.frames} frames at {fps:g} fps, face in {stats.face_ratio:.0%}, engine "
              f"{engine.name}, {time.perf_counter() - started:.1f} s", file=sys.stderr)
        print(times.table(n_frames / fps), file=sys.stderr)
    return 0


def evaluate(args: argparse.Namespace) -> int:
    """livedub evaluate OUT.mp4: weight-free A/V sync (mouth opening vs speech envelope)."""
    from livedub.engines.lipsync.sync_metric import evaluate_sync

    settings = settings_from(args).with_flags(syncnet_checkpoint=args.syncnet)
    report = evaluate_sync(args.video, max_offset=args.max_offset, syncnet_checkpoint=settings.syncnet_checkpoint)
    lead = "audio leads the mouth" if report.offset_frames > 0 else "mouth leads the audio"
    print(f"{args.video}: {report.frames} frames, face in {report.face_frames}")
    print(f"  AV offset        {report.offset_frames:+d} frames ({report.offset_seconds * 1000:+.0f} ms; "
          f"{lead if report.offset_frames else 'in sync'})")
    print(f"  peak correlation {report.peak_correlation:.3f} (mouth opening vs speech envelope, +-{args.max_offset} frames)")
    print(f"  mouth motion     {report.mouth_motion:.4f}")
    if report.lse_d is not None:
        print(f"  LSE-D {report.lse_d:.3f}  LSE-C {report.lse_c:.3f}")
    else:
        print(f"  {report.lse_note}")
    return 0


def export(args: argparse.Namespace) -> int:
    """livedub export --checkpoint wav2lip_gan.pth [--onnx OUT.onnx] [--tensorrt OUT.plan]: convert ahead of time."""
    import shutil

    from livedub.export.onnx_export import export_onnx

    if not Path(args.checkpoint).exists():
        raise LivedubError(f"{args.checkpoint}: no such checkpoint")
    if args.max_batch < 1:
        raise LivedubError(f"--max-batch {args.max_batch}: must be at least 1")
    if args.tensorrt:
        from livedub.export.tensorrt_build import require_tensorrt

        require_tensorrt()  # say so at once on a machine without TensorRT or a GPU, before any export
    started = time.perf_counter()
    if args.onnx or not args.tensorrt:
        out = Path(args.onnx or Path(args.checkpoint).with_suffix(".onnx"))
        with atomic_output(out) as tmp:
            export_onnx(args.checkpoint, tmp, fp16=args.fp16)
        print(f"{out}: exported in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    if args.tensorrt:
        from livedub.export.tensorrt_build import cached_plan

        started = time.perf_counter()
        plan = cached_plan(args.checkpoint, fp16=args.fp16, max_batch=args.max_batch)
        with atomic_output(args.tensorrt) as tmp:
            shutil.copyfile(plan, tmp)
        print(f"{args.tensorrt}: TensorRT engine ({'fp16' if args.fp16 else 'fp32'}, batch 1..{args.max_batch}) in "
              f"{time.perf_counter() - started:.1f} s (cached as {plan})", file=sys.stderr)
    return 0
