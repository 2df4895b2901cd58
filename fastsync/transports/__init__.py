"""Transports: each implements ImageReference / ImageSource / ImageDestination from base.py."""
