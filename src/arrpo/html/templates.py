"""The Jinja2 environment of the HTML pages arrpo writes (evaluation and learning reports).

Autoescaped (model text is hostile input), strict about undefined names, one environment per
package, built once.
"""

from __future__ import annotations

from functools import cache

import jinja2


@cache
def html_environment(package: str, *, trim: bool = False) -> jinja2.Environment:
    """The environment for the templates in ``package``'s ``templates`` folder; ``trim`` drops the
    whitespace of block tags (``trim_blocks``, ``lstrip_blocks``)."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader(package, "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=trim,
        lstrip_blocks=trim,
    )
