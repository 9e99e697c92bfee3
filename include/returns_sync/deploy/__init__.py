"""Deployment helpers run by the compose init job and by operators during upgrades."""
