"""Slides for the course: offline reveal.js decks built from the executed lesson notebooks.

- ``python -m slides.build``: one deck per ``notebooks/[0-9]*.ipynb`` into ``build/slides/``
  (reveal.js 4.0.2, jQuery, require.js and MathJax 2.7.7 copied into ``build/slides/vendor/``,
  downloaded once with ``npm pack`` into ``build/slides-cache/``), no network at presentation time.
- ``python -m slides.lint notebooks/*.ipynb``: cells without ``slideshow.slide_type`` and slides
  that will not fit a 1280x800 projector.

Live slideshows inside JupyterLab use jupyterlab-rise with the same cell metadata
(see docs/slides.md).
"""
