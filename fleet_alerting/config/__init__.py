"""The configuration: schema (pydantic), loader (file:line errors), secrets by reference."""

from fleet_alerting.config.loader import ConfigError, load_config
from fleet_alerting.config.schema import Config

__all__ = ["Config", "ConfigError", "load_config"]
