"""The 93 generation languages, their default weights, and an offline language check.

mmE5 synthesised data in 93 languages with English the largest share (paper Fig. 3);
the exact mix was not published, so the default below is tiered: English 20 %, eleven
high-resource languages ~4 % each, twenty mid-resource ~1 %, the rest share what is left.
"""

from __future__ import annotations

import functools
import unicodedata

from .errors import SpecError
from .weights import normalise, parse_weight

NAMES = {
    "en": "English",
    "es": "Spanish",
    "fr": "French",
    "de": "German",
    "zh": "Chinese",
    "ja": "Japanese",
    "ru": "Russian",
    "pt": "Portuguese",
    "it": "Italian",
    "ar": "Arabic",
    "ko": "Korean",
    "hi": "Hindi",
    "nl": "Dutch",
    "pl": "Polish",
    "tr": "Turkish",
    "vi": "Vietnamese",
    "id": "Indonesian",
    "th": "Thai",
    "sv": "Swedish",
    "cs": "Czech",
    "el": "Greek",
    "he": "Hebrew",
    "hu": "Hungarian",
    "ro": "Romanian",
    "da": "Danish",
    "fi": "Finnish",
    "no": "Norwegian",
    "uk": "Ukrainian",
    "fa": "Persian",
    "bn": "Bengali",
    "ms": "Malay",
    "ta": "Tamil",
    "ur": "Urdu",
    "te": "Telugu",
    "mr": "Marathi",
    "bg": "Bulgarian",
    "hr": "Croatian",
    "sk": "Slovak",
    "sl": "Slovenian",
    "sr": "Serbian",
    "lt": "Lithuanian",
    "lv": "Latvian",
    "et": "Estonian",
    "ca": "Catalan",
    "eu": "Basque",
    "gl": "Galician",
    "af": "Afrikaans",
    "sw": "Swahili",
    "tl": "Tagalog",
    "ka": "Georgian",
    "hy": "Armenian",
    "az": "Azerbaijani",
    "kk": "Kazakh",
    "uz": "Uzbek",
    "be": "Belarusian",
    "mk": "Macedonian",
    "sq": "Albanian",
    "bs": "Bosnian",
    "is": "Icelandic",
    "ga": "Irish",
    "cy": "Welsh",
    "mt": "Maltese",
    "lb": "Luxembourgish",
    "eo": "Esperanto",
    "ne": "Nepali",
    "si": "Sinhala",
    "km": "Khmer",
    "lo": "Lao",
    "my": "Burmese",
    "pa": "Punjabi",
    "gu": "Gujarati",
    "kn": "Kannada",
    "ml": "Malayalam",
    "or": "Odia",
    "as": "Assamese",
    "am": "Amharic",
    "so": "Somali",
    "ha": "Hausa",
    "yo": "Yoruba",
    "ig": "Igbo",
    "zu": "Zulu",
    "xh": "Xhosa",
    "rw": "Kinyarwanda",
    "mg": "Malagasy",
    "ps": "Pashto",
    "ku": "Kurdish",
    "ky": "Kyrgyz",
    "tg": "Tajik",
    "tk": "Turkmen",
    "mn": "Mongolian",
    "ug": "Uyghur",
    "tt": "Tatar",
    "jv": "Javanese",
}
HIGH = ("es", "fr", "de", "zh", "ja", "ru", "pt", "it", "ar", "ko", "hi")
MID = (
    "nl",
    "pl",
    "tr",
    "vi",
    "id",
    "th",
    "sv",
    "cs",
    "el",
    "he",
    "hu",
    "ro",
    "da",
    "fi",
    "no",
    "uk",
    "fa",
    "bn",
    "ms",
    "ta",
)

# Languages the identifier cannot tell apart reliably on short texts: any member counts as the others.
CONFUSABLE = [
    {"hr", "sr", "bs"},
    {"no", "da", "nn"},
    {"ms", "id"},
    {"ru", "be", "uk"},
    {"zh", "wuu", "yue"},
    {"mk", "bg"},
    {"af", "nl"},
    {"gl", "pt", "es"},
    {"ca", "es", "oc"},
    {"ur", "hi"},
    {"fa", "tg"},
]
MIN_LETTERS = 20  # below this the identifier is guessing; such texts are not judged


def default_weights() -> dict[str, float]:
    """English 20 %, high-resource 4 % each, mid-resource 1 % each, the rest share the remainder."""
    low = [code for code in NAMES if code != "en" and code not in HIGH and code not in MID]
    weights = {"en": 0.20}
    weights.update({code: 0.04 for code in HIGH})
    weights.update({code: 0.01 for code in MID})
    rest = 1.0 - sum(weights.values())
    weights.update({code: rest / len(low) for code in low})
    return weights


def parse_weights(spec: str | None, known: dict[str, str], what: str) -> dict[str, float]:
    """``"en=0.5,de=0.3,fr"`` -> normalised weights; a bare name gets weight 1.

    Raises ValueError naming the offending entry and listing the valid names.
    """
    if not spec:
        raise SpecError(f"empty {what} list")
    weights: dict[str, float] = {}
    for part in (piece.strip() for piece in spec.split(",")):
        if not part:
            continue
        name, _, value = part.partition("=")
        name = name.strip()
        if name not in known:
            raise SpecError(f"unknown {what} {name!r}; valid: {', '.join(known)}")
        weights[name] = parse_weight(value, name, what)
    return normalise(weights, spec, what)


@functools.lru_cache(maxsize=1)
def _identifier():
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def _same_language(expected: str, found: str) -> bool:
    return expected == found or any(expected in group and found in group for group in CONFUSABLE)


def detect(text: str) -> tuple[str, float]:
    """(ISO code, probability) from the offline py3langid model."""
    return _identifier().classify(text)


def letters(text: str) -> int:
    return sum(1 for char in text if unicodedata.category(char).startswith("L"))


def check_language(text: str, expected: str) -> str | None:
    """None when ``text`` reads as ``expected`` (or is too short to judge), else why not."""
    if letters(text) < MIN_LETTERS:
        return None
    found, probability = detect(text)
    if _same_language(expected, found):
        return None
    return f"expected {NAMES.get(expected, expected)} ({expected}), text reads as {found} (p={probability:.2f})"
