"""The dashboard: a web page over the services' reads (SPEC §4 Dashboard)."""
