"""The fixed SMS text per language, and how many segments a text takes.

Dispatchers cannot type into the SMS: only the link changes. That keeps the channel useless for
abuse and keeps every language inside two segments (tested with a long public URL).
"""

from __future__ import annotations

TEMPLATES: dict[str, str] = {
    "en": "Emergency services ask you to show them the scene. Open this link: {link}",
    "fr": "Les services d'urgence vous demandent de leur montrer la scène. Ouvrez ce lien : {link}",
    "nl": "De hulpdiensten vragen u om hen de situatie te tonen. Open deze link: {link}",
    "de": "Der Notruf bittet Sie, ihm die Lage zu zeigen. Öffnen Sie diesen Link: {link}",
}
LANGUAGES = tuple(TEMPLATES)

# GSM 03.38 default alphabet and its extension table (extension characters cost two septets).
_GSM_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = set("^{}\\[~]|€\f")


def render(language: str, link: str) -> str:
    return TEMPLATES[language].format(link=link)


def segments(text: str) -> int:
    """Number of SMS segments ``text`` needs (GSM-7 when possible, else UCS-2)."""
    if all(ch in _GSM_BASIC or ch in _GSM_EXTENDED for ch in text):
        septets = sum(2 if ch in _GSM_EXTENDED else 1 for ch in text)
        return 1 if septets <= 160 else -(-septets // 153)
    units = len(text.encode("utf-16-le")) // 2
    return 1 if units <= 70 else -(-units // 67)
