"""The machinery that executes chapter templates into the book's pages and renders them.

Named ``publish`` so that it is not confused with the repository's ``book/`` folder of
executed pages. It never imports a chapter's code (``ropelib.findings``): a test walks
the imports. Modules, independent first:

  params          a template's declared parameters and checking values against them
  plan            the run plan (``book/runs.yml``): pages, parameters, and which page a result comes from
  runner          papermill execution with a cache keyed on template, parameters and inputs
  cluster         the same plan as Dask tasks (``--scheduler``)
  page_tables     which result tables each page wrote
  execution_page  the "Execution" page: cost of each page, every result table
  sphinx_pages    Sphinx extension: generated parts of the pages
  sphinx_assets   Sphinx extension: each inline script once
  cli             ``ropebook`` (also ``python -m ropelib``)
"""
