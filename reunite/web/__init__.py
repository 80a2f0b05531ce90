"""The staff pages: sign in, review queue, new intake, search by photo, case page.

Server-rendered with Jinja2, in Simplified Chinese and English, with almost no JavaScript.
"""

from reunite.web.intake_pages import MAX_INTAKE_PHOTOS
from reunite.web.pages import STATIC_DIR, install_pages

__all__ = ["MAX_INTAKE_PHOTOS", "STATIC_DIR", "install_pages"]
