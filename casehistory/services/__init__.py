"""The service layer the entrypoints call: the reports (`reports`), and the services behind
them (who may look and the lookup log, the identity vault, audit, replay, verify)."""
