"""What a login or an email must look like, and when two logins are the same one. Pure.

Logins (CONTRACT §8.3) are compared in their canonical form, NFKC and case-folded, so
``Alice``, ``ALICE`` and ``alice`` in fullwidth letters are one login. A new login must be
of a single script (Unicode TR #39): a Cyrillic a (U+0430) in a Latin ``alice`` is refused,
as are invisible and control characters and white space at either end, so that no two
logins look alike.

Python's unicodedata has no Script_Extensions property; the ``regex`` package (the
Unicode-aware regular expression engine for Python, updated with every Unicode release)
has, as ``\\p{scx=...}``. Emails are checked for syntax by ``email-validator`` (the library
behind pydantic's ``EmailStr``), never by DNS: the Qt client rejects a reply whose email it
does not take for valid.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache
from typing import Final

import email_validator
import regex

# Control (and line or paragraph separators, which break a line as a control does), format
# and default-ignorable characters (zero-width spaces and joiners, variation selectors,
# fillers): none of them shows, so two logins differing by one would look the same.
_INVISIBLE: Final = regex.compile(r"[\p{Cc}\p{Zl}\p{Zp}\p{Cf}\p{Default_Ignorable_Code_Point}]")
# Characters whose Script_Extensions is Common or Inherited join any script (TR #39).
_ANY_SCRIPT: Final = regex.compile(r"[\p{scx=Zyyy}\p{scx=Zinh}]")

# Every script regex 2026.12 knows, by ISO 15924 code (those an older installed regex
# does not know are left out; a letter of a script no code here names has none, and is refused).
_SCRIPT_BLOCK: Final = """
    Latn Bopo Grek Copt Cyrl Armn Hebr Arab Syrc Thaa Nkoo Samr Mand Deva Beng Guru Gujr Orya
    Taml Telu Knda Mlym Sinh Thai Laoo Tibt Mymr Geor Hang Ethi Cher Cans Ogam Runr Tglg Hano
    Buhd Tagb Khmr Mong Limb Tale Talu Bugi Lana Bali Sund Batk Lepc Olck Brai Glag Tfng Hani
    Hira Kana Yiii Lisu Vaii Bamu Sylo Phag Saur Kali Rjng Java Cham Tavt Mtei Linb Lyci Cari
    Ital Goth Perm Ugar Xpeo Dsrt Shaw Osma Osge Elba Aghb Vith Todr Lina Cprt Armi Palm Nbat
    Hatr Phnx Lydi Sidt Mero Merc Khar Sarb Narb Mani Avst Prti Phli Phlp Orkh Hung Rohg Gara
    Yezi Sogo Sogd Ougr Chrs Elym Brah Kthi Sora Cakm Mahj Shrd Khoj Mult Sind Gran Tutg Newa
    Tirh Sidd Modi Takr Ahom Dogr Wara Diak Nand Zanb Soyo Pauc Sunu Bhks Marc Gonm Gong Tols
    Maka Kawi Xsux Pcun Cpmn Egyp Hluw Gukh Mroo Tnsa Bass Hmng Krai Medf Berf Miao Tang Nshu
    Kits Jurc Dupl Sgnw Hmnp Toto Wcho Nagm Onao Tayo Mend Adlm Seal Hrkt
"""
_SCRIPT_CODES: Final = _SCRIPT_BLOCK.split()
# TR #39's augmented script sets: the scripts written together count as one, so a Japanese
# login mixes Han, Hiragana and Katakana, a Korean one Han and Hangul.
_WRITING_SYSTEMS: Final = {
    "Jpan": ("Hani", "Hira", "Kana", "Hrkt"),
    "Kore": ("Hani", "Hang"),
    "Hanb": ("Hani", "Bopo"),
}


def _script_classes() -> dict[str, regex.Pattern[str]]:
    classes = {}
    for name, scripts in [*((code, (code,)) for code in _SCRIPT_CODES), *_WRITING_SYSTEMS.items()]:
        try:
            classes[name] = regex.compile("[" + "".join(f"\\p{{scx={s}}}" for s in scripts) + "]")
        except regex.error:  # a script newer than the installed regex
            continue
    return classes


_SCRIPT_CLASSES: Final = _script_classes()


@lru_cache(maxsize=4096)
def _scripts_of(char: str) -> frozenset[str]:
    """The (augmented) scripts a character is written in; tested once per character."""
    return frozenset(name for name, pattern in _SCRIPT_CLASSES.items() if pattern.match(char))


def login_problem(login: str) -> str | None:
    """Why ``login`` cannot be registered (a sentence naming the field), or None."""
    if login != login.strip():
        return "The field user.login must not begin or end with white space."
    if login.isascii():  # nearly every login: Latin letters, and Common digits and marks
        return None if login.isprintable() else _INVISIBLE_DETAIL
    if _INVISIBLE.search(login):
        return _INVISIBLE_DETAIL
    shared: frozenset[str] | None = None
    for char in login:
        if _ANY_SCRIPT.match(char):
            continue
        scripts = _scripts_of(char)
        shared = scripts if shared is None else shared & scripts
        if not shared:
            return "The field user.login must be written in one script."
    return None


_INVISIBLE_DETAIL: Final = (
    "The field user.login must not hold control, format or invisible characters."
)


def canonical_login(login: str) -> str:
    """The form two logins share when they are the same login: NFKC, case-folded."""
    if login.isascii():
        folded = login.lower()
    else:  # case folding can undo NFKC (as for U+0345), so it is normalized again
        folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", login).casefold())
    return login if folded == login else folded  # one string in memory, not two


def email_problem(email: str) -> str | None:
    """Why ``email`` is no email address (a sentence naming the field), or None."""
    try:
        email_validator.validate_email(email, check_deliverability=False)
    except email_validator.EmailNotValidError:
        return "The field user.email must be an email address."
    return None
