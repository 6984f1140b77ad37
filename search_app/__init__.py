"""The photo search app: a Gradio page and an HTTP API over an index built by ``indexer``.

Entry points: ``python app.py`` or ``python -m search_app`` (serve), ``python -m search_app add-user NAME``.
"""
