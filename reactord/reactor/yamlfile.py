"""The YAML loader of rule files lives in ``reactord.protocol.yamlfile`` (config files use it too)."""

from reactord.protocol.yamlfile import LineDict, load_with_lines

__all__ = ["LineDict", "load_with_lines"]
