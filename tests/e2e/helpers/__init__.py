"""Helpers shared by the end-to-end suites: moto server, the agent process, OS users."""
