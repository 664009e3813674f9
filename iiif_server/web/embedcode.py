"""The one line a museum web team pastes: an ``<iframe>`` of an embed page.

One builder for the snippet shown on item pages and the ``html`` of oEmbed answers, so a CMS
that embeds through oEmbed gets exactly what a person copying the snippet gets.
"""

from __future__ import annotations

from html import escape

DEFAULT_WIDTH = 800
DEFAULT_HEIGHT = 600


def iframe(src: str, title: str, width: int | str = DEFAULT_WIDTH, height: int = DEFAULT_HEIGHT) -> str:
    """``<iframe>`` markup for an embed page at the absolute URL ``src`` (attributes escaped).

    ``title`` names the frame for screen readers (WCAG 4.1.2); ``allow`` lets the viewer's full-screen
    and "share this view" (copy) buttons work inside the frame, ``allowfullscreen`` says the same to older
    browsers (Chromium warns that ``allow`` outranks it: harmless); ``loading="lazy"`` keeps a long
    article fast.
    """
    return (
        f'<iframe src="{escape(src)}" title="{escape(title)}" width="{escape(str(width))}" height="{int(height)}" '
        'style="border:0;max-width:100%" allow="fullscreen; clipboard-write" allowfullscreen loading="lazy"></iframe>'
    )
