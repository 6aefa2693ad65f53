"""LaTeX formulas as MathML, on the server side, so executed notebooks read offline without MathJax.

:func:`tex_to_mathml` converts through ``latex2mathml`` and then makes the output render in MathML Core browsers
(Chromium, Firefox, Safari): styled letters become styled code points, Greek capitals upright, ``\\|`` a double bar.
"""
from __future__ import annotations

import html
import logging
import re
import unicodedata

log = logging.getLogger(__name__)


_MATH_NS = "http://www.w3.org/1998/Math/MathML"
#: LaTeX commands latex2mathml leaves untranslated, rewritten before conversion.
_TEX_REWRITES = ((re.compile(r"\\arg(?![A-Za-z])"), r"\\mathrm{arg}"),)
#: MathML ``mathvariant`` values → the words of their Unicode "Mathematical Alphanumeric Symbols" names.
#: Chromium implements MathML Core, which ignores every mathvariant but ``normal``, so styled letters
#: (\mathcal N, \mathbf 1, \mathbb R) are written as the styled code points themselves.
_VARIANTS = {
    "bold": "BOLD", "italic": "ITALIC", "bold-italic": "BOLD ITALIC", "double-struck": "DOUBLE-STRUCK",
    "script": "SCRIPT", "bold-script": "BOLD SCRIPT", "fraktur": "FRAKTUR", "bold-fraktur": "BOLD FRAKTUR",
    "sans-serif": "SANS-SERIF", "bold-sans-serif": "SANS-SERIF BOLD", "sans-serif-italic": "SANS-SERIF ITALIC",
    "sans-serif-bold-italic": "SANS-SERIF BOLD ITALIC", "monospace": "MONOSPACE",
}
#: Letters whose styled form predates the Mathematical Alphanumeric block (the block leaves holes there).
_LETTERLIKE = {("ITALIC", "SMALL", "H"): "PLANCK CONSTANT"}
_STYLED_TOKEN = re.compile(r'<(mi|mn|mtext)([^>]*?) mathvariant="([a-z-]+)"([^>]*)>([^<]*)</\1>')
_CHAR_NAME = re.compile(r"(?:LATIN|GREEK) (CAPITAL|SMALL) LETTER (\w+)|DIGIT (\w+)")


def _styled_char(char: str, variant: str) -> str:
    """``char`` in the mathematical style ``variant`` (a Unicode name fragment), or ``char`` if none exists."""
    m = _CHAR_NAME.fullmatch(unicodedata.name(char, ""))
    if not m:
        return char
    names = [f"MATHEMATICAL {variant} DIGIT {m.group(3)}"] if m.group(3) else [
        f"MATHEMATICAL {variant} {m.group(1)} {m.group(2)}",
        _LETTERLIKE.get((variant, m.group(1), m.group(2)), ""),
        f"{variant.replace('FRAKTUR', 'BLACK-LETTER')} {m.group(1)} {m.group(2)}",  # ℬ ℂ ℌ ℛ ℝ …
    ]
    for name in filter(None, names):
        try:
            return unicodedata.lookup(name)
        except KeyError:
            continue
    return char


def _apply_variants(mathml: str) -> str:
    """Replace ``<mi mathvariant="script">N</mi>`` by ``<mi>𝒩</mi>`` (styled code points; see :data:`_VARIANTS`)."""
    def sub(m: re.Match) -> str:
        tag, before, variant, after, text = m.groups()
        if variant not in _VARIANTS:
            return m.group(0)
        styled = "".join(_styled_char(c, _VARIANTS[variant]) for c in html.unescape(text))
        return f"<{tag}{before}{after}>{html.escape(styled, quote=False)}</{tag}>"
    return _STYLED_TOKEN.sub(sub, mathml)


def _upright_greek_capitals(mathml: str) -> str:
    """``<mi>Π</mi>`` → ``<mi mathvariant="normal">Π</mi>``: TeX sets capital Greek upright, while MathML
    italicises every single-letter ``<mi>``."""
    def sub(m: re.Match) -> str:
        char = html.unescape(m.group(1))
        upright = len(char) == 1 and "\u0391" <= char <= "\u03a9"
        return f'<mi mathvariant="normal">{m.group(1)}</mi>' if upright else m.group(0)
    return re.sub(r"<mi>([^<]*)</mi>", sub, mathml)


def _unconverted(mathml: str) -> list[str]:
    """LaTeX commands left as text inside converted MathML (``\\foo``): what latex2mathml did not know."""
    text = " ".join(re.findall(r">([^<]*)<", mathml))
    return re.findall(r"\\[A-Za-z]+|\\.", html.unescape(text))


def tex_to_mathml(tex: str, display: bool = False) -> str:
    """MathML for the LaTeX formula ``tex`` (without its ``$`` delimiters).

    Uses latex2mathml, then makes the output render in MathML Core browsers (Chromium, Firefox, Safari):
    ``\\big\\|`` becomes ‖, styled letters become styled code points, a stray ``&`` is escaped. A formula
    latex2mathml cannot parse is shown as its LaTeX source in ``<code class="tex">`` with a warning in the log,
    rather than failing the whole page."""
    from latex2mathml.converter import convert

    source = tex
    for pattern, replacement in _TEX_REWRITES:
        source = pattern.sub(replacement, source)
    try:
        mathml = convert(source.strip(), display="block" if display else "inline")
    except Exception as err:  # noqa: BLE001 - latex2mathml raises many types; any of them means "show the source"
        log.warning("formula %r could not be converted to MathML (%s: %s); showing its LaTeX source",
                    tex, type(err).__name__, err)
        delim = "$$" if display else "$"
        return f'<code class="tex">{html.escape(delim + tex + delim)}</code>'
    mathml = mathml.replace(">\\|<", ">&#x02016;<")
    mathml = re.sub(r"&(?!#?[A-Za-z0-9]+;)", "&amp;", mathml)
    mathml = _upright_greek_capitals(_apply_variants(mathml))
    left = _unconverted(mathml)
    if left:
        log.warning("formula %r: latex2mathml left %s untranslated", tex, sorted(set(left)))
    return mathml
