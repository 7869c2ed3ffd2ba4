"""A Sphinx extension for the book's HTML: each inline script is emitted once.

Sphinx 7.4 adds an inline script registered after the builder started
(``app.add_js_file(None, body=...)``) to every page twice: once as filename ``None`` and
once as ``''``, which its de-duplication treats as different. sphinx-thebe (always
loaded by jupyter-book 1.x) registers ``const THEBE_JS_URL = ...`` that way, so every
page raised "Identifier 'THEBE_JS_URL' has already been declared" in the browser
console (caught by tests/publish/test_browser.py). This drops the second copy when each page is
rendered. It changes nothing else; remove it once Sphinx no longer duplicates them (the
browser test will say so).

Enabled in ``_config.yml`` under ``sphinx: extra_extensions``.
"""


def _key(script) -> tuple:
    attributes = getattr(script, "attributes", {}) or {}
    filename = getattr(script, "filename", script) or ""
    return (filename, getattr(script, "priority", None), tuple(sorted((k, str(v)) for k, v in attributes.items())))


def _drop_duplicate_scripts(app, pagename, templatename, context, doctree) -> None:
    seen, unique = set(), []
    for script in context.get("script_files", []):
        if _key(script) not in seen:
            seen.add(_key(script))
            unique.append(script)
    context["script_files"] = unique


def setup(app) -> dict:
    app.connect("html-page-context", _drop_duplicate_scripts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
