"""Render the smoke template, which uses the package's ``{% eventtrack_script %}`` tag."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.template.loader import render_to_string


class Command(BaseCommand):
    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(render_to_string("smoke.html"))
