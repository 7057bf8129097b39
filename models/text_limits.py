"""How long a social post is, counted the way its platform counts, and each platform's limit.

Pure functions, no I/O. What is counted is the text exactly as the publisher sends it: `SocialPost.text`, which
already holds the link and the hashtags (the social stage writes the whole post, hashtags included, and
`publishers.base.Delivery.text` is that text unchanged; `Delivery.hashtags` only lists them alongside).

- X: 280, counted in code points after NFC normalization, with every http(s) URL counting as 23 (t.co).
  Known gap: X's own counter (twitter-text v3) weighs CJK characters and emoji as 2 and also shortens bare
  domains without a scheme (example.com); neither is done here, so a post in Chinese or Japanese, or one full of
  emoji, may be longer on X than shown.
- Bluesky: 300 grapheme clusters. Python has no grapheme segmentation in the standard library, so
  `grapheme_count` approximates Unicode's extended grapheme clusters (UAX #29) with `unicodedata`: combining
  marks, variation selectors, emoji skin-tone modifiers, tag characters and Hangul vowel/final jamo extend the
  cluster before them; an emoji joined by a ZWJ to the next emoji is one cluster; regional indicators pair into
  one flag; CR LF is one. Indic conjuncts and Hangul leading-jamo runs are not merged (rare in posts here).
  A URL counts in full: the publisher sends it as written.
- Mastodon: the instance's limit (500 by default), every link counting 23 (`mastodon_length`, with a connected
  channel's rules).
- LinkedIn 3,000, Instagram 2,200, Facebook 63,206, Threads 500: code points.
"""

import re
import unicodedata

from models.channels import PlatformRules
from models.enums import Platform
from models.generation import PLATFORM_LIMITS

# The same limits the social stage writes to (one source of truth): X 280, LinkedIn 3000, Instagram 2200,
# Facebook 63206, Threads 500, Bluesky 300.
LIMITS: dict[Platform, int] = {platform: limit.max_chars for platform, limit in PLATFORM_LIMITS.items()}

X_URL_LENGTH = 23  # every link on X is wrapped in t.co and counts as 23 characters, however long it is

# An http(s) URL up to the next space; punctuation that ends a sentence after it is not part of it.
URL = re.compile(r"https?://[^\s<>\"]+", re.IGNORECASE)
_URL_TRAILING = ".,;:!?'\")]}"
HASHTAG = re.compile(r"(?<!\S)#\w+")

ZWJ = "\u200d"


def url_spans(text: str) -> list[tuple[int, int]]:
    """Where the http(s) URLs of `text` are, as (start, end), without trailing sentence punctuation."""
    spans = []
    for match in URL.finditer(text):
        start, end = match.span()
        while end > start and text[end - 1] in _URL_TRAILING:
            end -= 1
        if end - start > len("https://"):
            spans.append((start, end))
    return spans


def unit_of(platform: Platform) -> str:
    """What the platform's limit counts, for a label: "graphemes" on Bluesky, else "characters"."""
    return "graphemes" if platform == Platform.BLUESKY else "characters"


def counted_length(platform: Platform, text: str) -> int:
    """The length of `text` as `platform` counts it against `LIMITS[platform]`."""
    if platform == Platform.X:
        text = unicodedata.normalize("NFC", text)
        spans = url_spans(text)
        return len(text) - sum(end - start for start, end in spans) + X_URL_LENGTH * len(spans)
    if platform == Platform.BLUESKY:
        return grapheme_count(text)
    return len(text)


# ---- graphemes, approximately ------------------------------------------------------------------------------


def _is_control(char: str) -> bool:
    return char in "\r\n" or unicodedata.category(char) in ("Cc", "Zl", "Zp")


def _is_extend(char: str) -> bool:
    """Joins the cluster before it: combining marks (also spacing ones), ZWJ, variation selectors, skin-tone
    modifiers, tag characters (subdivision flags), Hangul vowel and final jamo."""
    code = ord(char)
    return (
        unicodedata.category(char) in ("Mn", "Me", "Mc")
        or char == ZWJ
        or 0xFE00 <= code <= 0xFE0F
        or 0xE0100 <= code <= 0xE01EF
        or 0x1F3FB <= code <= 0x1F3FF
        or 0xE0020 <= code <= 0xE007F
        or 0x1160 <= code <= 0x11FF
        or 0xD7B0 <= code <= 0xD7FF
    )


def _is_regional_indicator(char: str) -> bool:
    return 0x1F1E6 <= ord(char) <= 0x1F1FF


def _is_pictographic(char: str) -> bool:
    """Roughly Unicode's Extended_Pictographic: the emoji blocks and other symbols."""
    code = ord(char)
    return 0x1F000 <= code <= 0x1FAFF or unicodedata.category(char) == "So"


def grapheme_count(text: str) -> int:
    """The number of user-perceived characters of `text`, approximately (see the module's docstring)."""
    count = 0
    previous = ""
    base_pictographic = False  # the current cluster started with an emoji (for ZWJ sequences)
    open_flag = False  # the current cluster is a single regional indicator, waiting for its pair
    for char in text:
        if not previous:
            joins = False
        elif previous == "\r" and char == "\n":
            joins = True
        elif _is_control(previous) or _is_control(char):
            joins = False
        elif _is_extend(char):
            joins = True
        elif previous == ZWJ and base_pictographic and _is_pictographic(char):
            joins = True
        else:
            joins = open_flag and _is_regional_indicator(char)
        if joins:
            open_flag = False
        else:
            count += 1
            base_pictographic = _is_pictographic(char)
            open_flag = _is_regional_indicator(char)
        previous = char
    return count


# A remote mention `@user@domain` counts as `@user` on Mastodon (Account::MENTION_RE in its StatusLengthValidator).
MASTODON_MENTION = re.compile(r"(?<![=/\w])@([a-z0-9_]+(?:[.-]+[a-z0-9_]+)*)(?:@[\w]+(?:[.-]+[\w]+)*)?", re.IGNORECASE)


def mastodon_length(text: str, rules: PlatformRules) -> int:
    """The length of `text` as a Mastodon instance with these rules counts it against `rules.max_chars`: every http(s)
    link counts `rules.url_length` (23 on Mastodon, however long it is; as written when None), a remote mention
    `@user@domain` counts as `@user`, and the rest counts in code points. Mastodon itself counts grapheme clusters,
    which are never more than code points, so a text within the limit here is within it on the instance (a text
    full of emoji sequences may be refused here a little early); with `rules.unit == "graphemes"` the rest counts
    in (approximate) graphemes. The publisher checks with it before sending and the studio's preview shows it."""
    count = grapheme_count if rules.unit == "graphemes" else len
    length = 0
    start = 0
    for url_start, url_end in url_spans(text):
        length += count(MASTODON_MENTION.sub(r"@\1", text[start:url_start]))
        length += rules.url_length if rules.url_length is not None else count(text[url_start:url_end])
        start = url_end
    return length + count(MASTODON_MENTION.sub(r"@\1", text[start:]))
