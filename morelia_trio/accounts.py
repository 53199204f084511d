"""What an email must look like. Pure.

Emails are checked for syntax by ``email-validator`` (the library behind pydantic's
``EmailStr``), never by DNS: the Qt client rejects a reply whose email it does not take for
valid.
"""

from __future__ import annotations

import email_validator


def email_problem(email: str) -> str | None:
    """Why ``email`` is no email address (a sentence naming the field), or None."""
    try:
        email_validator.validate_email(email, check_deliverability=False)
    except email_validator.EmailNotValidError:
        return "The field user.email must be an email address."
    return None
