"""Language codes: ISO 639-1 (what livedub speaks) ↔ ISO 639-3 (what Apertium, OPUS-MT and NLLB speak)."""

from __future__ import annotations

# ISO 639-1 → ISO 639-3 for the languages Apertium, OPUS-MT, NLLB and whisper cover between them.
ISO3: dict[str, str] = {
    "af": "afr", "am": "amh", "an": "arg", "ar": "ara", "as": "asm", "az": "aze", "be": "bel", "bg": "bul",
    "bn": "ben", "br": "bre", "bs": "bos", "ca": "cat", "cs": "ces", "cy": "cym", "da": "dan", "de": "deu",
    "el": "ell", "en": "eng", "eo": "epo", "es": "spa", "et": "est", "eu": "eus", "fa": "fas", "fi": "fin",
    "fo": "fao", "fr": "fra", "fy": "fry", "ga": "gle", "gd": "gla", "gl": "glg", "gu": "guj", "he": "heb",
    "hi": "hin", "hr": "hrv", "ht": "hat", "hu": "hun", "hy": "hye", "id": "ind", "is": "isl", "it": "ita",
    "ja": "jpn", "jv": "jav", "ka": "kat", "kk": "kaz", "km": "khm", "kn": "kan", "ko": "kor", "ku": "kur",
    "ky": "kir", "la": "lat", "lb": "ltz", "lo": "lao", "lt": "lit", "lv": "lav", "mk": "mkd", "ml": "mal",
    "mn": "mon", "mr": "mar", "ms": "msa", "mt": "mlt", "my": "mya", "nb": "nob", "ne": "nep", "nl": "nld",
    "nn": "nno", "no": "nor", "oc": "oci", "pa": "pan", "pl": "pol", "ps": "pus", "pt": "por", "ro": "ron",
    "ru": "rus", "sc": "srd", "sd": "snd", "se": "sme", "sh": "hbs", "si": "sin", "sk": "slk", "sl": "slv",
    "so": "som", "sq": "sqi", "sr": "srp", "sv": "swe", "sw": "swa", "ta": "tam", "te": "tel", "tg": "tgk",
    "th": "tha", "tk": "tuk", "tl": "tgl", "tr": "tur", "tt": "tat", "uk": "ukr", "ur": "urd", "uz": "uzb",
    "vi": "vie", "yi": "yid", "yo": "yor", "zh": "zho", "zu": "zul",
}
ISO1: dict[str, str] = {v: k for k, v in ISO3.items()}
ISO1.update({"nob": "nb", "nno": "nn", "cmn": "zh", "arb": "ar", "pes": "fa", "zsm": "ms", "swh": "sw"})

# Macrolanguages: models often use an individual member's code (NLLB "arb_Arab", OPUS ">>cmn_Hans<<").
_MEMBERS: dict[str, tuple[str, ...]] = {
    "ar": ("arb",), "zh": ("cmn",), "fa": ("pes",), "ms": ("zsm",), "no": ("nob",), "sw": ("swh",),
    "sq": ("als",), "uz": ("uzn",), "et": ("ekk",), "lv": ("lvs",), "ku": ("kmr",), "mn": ("khk",),
}
# Script NLLB uses when a language has several (zho_Hans vs zho_Hant).
NLLB_SCRIPT: dict[str, str] = {"zh": "Hans", "sr": "Cyrl", "pa": "Guru", "ms": "Latn", "uz": "Latn"}


def to_iso3(code: str) -> str:
    """ISO 639-3 for an ISO 639-1 code ("en" → "eng"); a 3-letter code passes through."""
    code = code.strip().lower().replace("-", "_").split("_")[0]
    if len(code) == 3:
        return code
    try:
        return ISO3[code]
    except KeyError:
        raise ValueError(f"unknown ISO 639-1 language code {code!r}") from None


def to_iso1(code: str) -> str:
    """ISO 639-1 for an ISO 639-3 code ("spa" → "es"); unknown 3-letter codes pass through unchanged."""
    code = code.strip().lower()
    if len(code) == 2:
        return code
    return ISO1.get(code, code)


def iso3_candidates(code: str) -> tuple[str, ...]:
    """Every 3-letter code a model might use for `code`: the ISO 639-3 code, then macrolanguage members."""
    iso1 = to_iso1(code)
    iso3 = to_iso3(code)
    return (iso3, *_MEMBERS.get(iso1, ()))


def check_language(code: str, role: str = "language") -> str:
    """`code` normalised ("ES" → "es") when it is a language livedub knows; else one clear error naming it."""
    from ..errors import BadInputError

    norm = (code or "").strip().lower()
    if norm in ISO3:
        return norm
    if len(norm) == 3 and norm in ISO1:
        return ISO1[norm]
    hint = "an ISO 639-1 code such as en, es, de, fr, pt, zh"
    raise BadInputError(f"{role} language {code!r} is not a language code livedub knows ({hint})")
