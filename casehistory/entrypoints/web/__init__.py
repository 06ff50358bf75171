"""The dashboard: server-rendered pages, Danish words and number forms, the timeline."""
