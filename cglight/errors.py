"""Exceptions raised for user mistakes. The CLI prints them without a traceback."""

from __future__ import annotations


class CGLightError(Exception):
    """Base class of every error caused by input (config, data, plugin) rather than a bug."""


class ConfigError(CGLightError, ValueError):
    """A config key is missing, has a bad value, or names something that does not exist."""


class DatasetError(CGLightError):
    """A dataset directory, manifest or shard is missing or malformed."""


class PluginError(CGLightError, LookupError):
    """A loss plugin is unknown, fails to import, or is misconfigured."""


class TrainingDivergedError(CGLightError):
    """Training ran away (a loss term non-finite or exploding); the message names the term and step."""
