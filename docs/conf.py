"""Sphinx configuration: ``tox -e docs`` builds the site with warnings as errors.

Sphinx, not MkDocs: autodoc reads the API reference from the docstrings of the
package (so it cannot drift from the code), the build needs no network, and
MyST lets every page, including the vendor notes and the changelog, stay plain
Markdown that reads well on GitHub too. Furo is a maintained, readable theme.
"""

from __future__ import annotations

import sys
from pathlib import Path

import django
from django.conf import settings

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))

# autodoc imports the package, which needs configured settings and a loaded app registry.
settings.configure(
    INSTALLED_APPS=[
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "django.contrib.admin",
        "django.contrib.sessions",
        "django.contrib.messages",
        "django_eventtrack",
    ],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
    USE_TZ=True,
)
django.setup()

from django_eventtrack import __version__  # noqa: E402  (needs the settings above

project = "django-eventtrack"
author = "the django-eventtrack developers"
copyright = f"2026, {author}"
release = __version__
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
]
# No napoleon: the docstrings are prose, and it would read "Verb: rest" as a type.
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build"]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

autodoc_typehints = "description"
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True}

html_theme = "furo"
html_title = f"django-eventtrack {release}"
