"""Transports: they only move media in and out of a `DubSession` (files, devices, WebRTC)."""
