"""Entrypoints: the command line, the read API and the dashboard. They parse input,
call `casehistory.services` and render what it returns."""
