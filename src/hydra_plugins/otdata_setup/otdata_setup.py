"""Hydra finds this module (every module under the `hydra_plugins` namespace) whenever it builds a
config search path, so composing otdata's `conf/` works in any Python session, e.g. a notebook's
`initialize_config_dir(...)` + `compose(...)`, without importing otdata first: importing
`otdata.config` registers the typed task schemas (`schema/task/*`) and the `${otdata.*:}`
resolvers that the YAML files use, and `otdata.class_schemas.install` makes every config composed
from otdata's `conf/` pass the typed check of its `trainer`, `logger`, `callbacks`, data and
`model.net` nodes."""

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

import otdata.config  # noqa: F401  (registers the schemas and resolvers)
from otdata.class_schemas import install

install()


class OtdataSetupPlugin(SearchPathPlugin):
    """Adds no search path: importing this module is what sets otdata's configs up."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        pass
