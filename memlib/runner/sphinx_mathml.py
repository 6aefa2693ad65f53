"""A Sphinx extension: formulas rendered as MathML when the site is built, so pages need no MathJax and no network.

Sphinx's default math renderer loads MathJax from a CDN; this one turns each ``math`` / ``math_block`` node into
MathML with :func:`memlib.runner.mathml.tex_to_mathml` (the converter the report uses), which every current browser
draws natively. ``conf.py`` of the site (``site/conf.py``) lists it in ``extensions`` and sets
``html_math_renderer = "mathml"``.
"""
from __future__ import annotations

from .mathml import tex_to_mathml


def _visit_inline(self, node) -> None:
    from docutils import nodes

    self.body.append(tex_to_mathml(node.astext(), display=False))
    raise nodes.SkipNode


def _visit_block(self, node) -> None:
    from docutils import nodes

    tex = node.astext()
    if node.get("nowrap"):  # `.. math:: :nowrap:` / amsmath environments: the source is the whole formula
        body = tex_to_mathml(tex, display=True)
    else:  # several equations separated by blank lines: one display each, as Sphinx's MathJax renderer does
        body = "".join(tex_to_mathml(part, display=True) for part in tex.split("\n\n") if part.strip())
    number = ""
    if node.get("number"):
        number = f'<span class="eqno">({node["number"]})</span>'
    ident = f' id="{node["ids"][0]}"' if node.get("ids") else ""
    self.body.append(f'<div class="math-wrapper docutils container"{ident}>{number}{body}</div>\n')
    raise nodes.SkipNode


def setup(app) -> dict:
    app.add_html_math_renderer("mathml", (_visit_inline, None), (_visit_block, None))
    return {"parallel_read_safe": True, "parallel_write_safe": True}
