# Sphinx configuration of the companion site (`make site`). memlib.runner.site copies this folder into
# build/site-src/, writes the generated pages beside it and runs sphinx-build; nothing here is executed again.
# The stack is Jupyter Book 1's (Sphinx + myst-nb + sphinx-book-theme), used directly; its pins are in pyproject.toml.
project = "memlib"
author = "the memlib authors"
copyright = "the memlib authors (MIT licence)"
html_title = "memlib — memorization vs. generalization, re-run"

extensions = ["myst_nb", "memlib.runner.sphinx_mathml"]
# The notebooks were executed by `make all`; the site only renders them.
nb_execution_mode = "off"
# myst-nb would load require.js and the widget manager from CDNs; widgets are replaced by a note instead.
nb_ipywidgets_js = {}
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
# the notebooks write display formulas ($$…$$) inside paragraphs, as Jupyter allows
myst_dmath_double_inline = True
# Formulas as MathML at build time (memlib.runner.sphinx_mathml): no MathJax, no network.
html_math_renderer = "mathml"

html_theme = "sphinx_book_theme"
html_theme_options = {
    "home_page_in_toc": True,
    "show_toc_level": 2,
    "use_download_button": False,
    "use_fullscreen_button": False,
    "search_bar_text": "Search the studies…",
}
html_context = {"default_mode": "auto"}
html_static_path = ["_static"]
html_css_files = ["memlib-site.css"]
html_js_files = ["memlib-site.js"]
html_extra_path = ["_extra"]
html_copy_source = False
html_show_sourcelink = False
html_last_updated_fmt = None
exclude_patterns = ["_build", "_extra", "**.ipynb_checkpoints", "exercises.yaml"]
suppress_warnings = ["myst.header"]
