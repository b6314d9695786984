"""`livedub devices`: cameras, microphones, outputs, and whether a virtual camera and microphone are available."""

from __future__ import annotations

import argparse
import json

from .common import common_flags


def register(sub) -> None:
    p = sub.add_parser("devices", help="list cameras, microphones and outputs, and how to get a virtual camera/mic",
                       description="What `livedub camera` can use on this machine.")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    common_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..io.devices import list_devices

    found = list_devices()
    if args.json:
        print(json.dumps(found, indent=2))
        return 0
    print("cameras:")
    for cam in found["cameras"] or [{"device": "(none found)", "name": "", "loopback": False}]:
        print(f"  {cam['device']}  {cam['name']}{'  [virtual]' if cam['loopback'] else ''}")
    print("microphones:")
    for mic in found["microphones"] or [{"index": "-", "name": found.get("audio_error", "(none found)")}]:
        print(f"  {mic['index']}  {mic['name']}")
    print("outputs:")
    for out in found["outputs"] or [{"index": "-", "name": found.get("audio_error", "(none found)")}]:
        print(f"  {out['index']}  {out['name']}")
    print(f"virtual camera: {found['virtual_camera']}")
    print(f"virtual microphone: {found['virtual_microphone']}")
    return 0
