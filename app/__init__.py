"""The ``sslzoo`` command line and the Gradio app (kept import-light: gradio loads only when the app starts)."""
