"""The web UI (``layoutguide ui``; needs the ``web`` extra: gradio and gradio-image-annotation).

``app`` builds the page, ``handlers`` does what its buttons do, ``annotate`` converts layouts to and from the
editors, ``options`` turns each method's option schema into form fields, ``jobs`` runs one generation (progress,
cancel, the reproducing command), ``files`` reads and writes layouts and run bundles, ``inside`` draws attention
heatmaps and the evaluator's verdict, ``limits`` holds the caps of a shared server, ``browser`` starts the app for
tests and screenshots.
"""
