"""What may be kept of what Studio sends, in one place: Studio's snapshots carry no personal
data by contract, but a bug or a hostile client can put a name, a phone number or a track title
in any string. Ingest keeps only a classification slug (snapshots/sanitize.py); the quarantine
keeps a rejected body's structure with its free text replaced (quarantine/service.py)."""

import re

from training.contract import CORRECTION_TYPES, KEYS, MODES, STEMS

# A classification is a short lowercase slug ('twotrack', 'full', 'four-stem'): nothing that
# could carry a name, a path, a URL or an address survives it.
CLASSIFICATION_PATTERN = re.compile(r"[a-z][a-z0-9_-]{0,31}")
SCRUBBED_CLASSIFICATION = "unknown"

# What an operator may see of a rejected body: its structure, keys, numbers and the contract's
# own words; never free text, which could name a person, a place, a phone number or a track,
# in whatever field (known or not) it arrives. Works on the text, so malformed JSON is covered.
_KEPT_WORDS = frozenset((*STEMS, *KEYS, *MODES, *CORRECTION_TYPES, "stem-separation", "true", "false", "null", "NaN", "Infinity"))
_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")  # a field name such as quantumFeatures
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# A JSON string (to its closing quote or the end of the line); a run of numbers with the commas,
# spaces and brackets between them (kept as it is, and matched as one so that a body of a
# million numbers is a few thousand tokens; it starts at a digit, so matching stays linear); or
# a run of letters outside a string.
_TOKEN = re.compile(
    r'(?P<string>"(?:[^"\\\n]|\\.)*"?)|(?P<numbers>\d[-+.\d,\s\[\]]*(?:(?<=\d)[eE][-+.\d,\s\[\]]*)*)|[^\W\d_][\w.@+\'-]*'
)


def without_free_text(text: str) -> str:
    """Every string and bare word replaced by a marker with its length, `"<text:11>"`, unless it
    is a field name, a UUID, one of the contract's enumerations, or a classification slug (as
    the value of "classification"). Linear in the text's length."""
    pieces, done, last_key = [], 0, None
    for match in _TOKEN.finditer(text):
        token = match.group()
        pieces.append(text[done : match.start()])
        done = match.end()
        if match.lastgroup == "numbers":
            pieces.append(token)
        elif match.lastgroup == "string":
            inner = token[1:-1] if len(token) > 1 and token.endswith('"') else token[1:]
            is_key = text[done : done + 64].lstrip().startswith(":")
            if is_key and _IDENTIFIER.fullmatch(inner):
                pieces.append(token)
                last_key = inner
                continue
            if (inner in _KEPT_WORDS or _UUID.fullmatch(inner)) or (
                last_key == "classification" and CLASSIFICATION_PATTERN.fullmatch(inner)
            ):
                pieces.append(token)
            else:
                pieces.append(f'"<text:{len(inner)}>"')
            if not is_key:
                last_key = None
        elif token in _KEPT_WORDS:
            pieces.append(token)
        else:
            pieces.append(f"<text:{len(token)}>")
    pieces.append(text[done:])
    return "".join(pieces)
