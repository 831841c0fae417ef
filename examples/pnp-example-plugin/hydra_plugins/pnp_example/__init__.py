"""Hydra finds this SearchPathPlugin in the ``hydra_plugins`` namespace package."""
from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin


class PnPExampleSearchPath(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        search_path.append(provider="pnp-example-plugin", path="pkg://pnp_example.conf")
