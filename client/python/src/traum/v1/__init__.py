"""Modules generated from proto/traum/v1 by client/python/generate.py."""
