"""The embedded default: which model and task the CLI, the collector and the main job use when not told.

Kept free of heavy imports so that the CLI can read it at start-up. The default table and surrogate are found
under the data root (:mod:`qra_bench.data`: ``$QRA_BENCH_DATA`` when set, else this checkout), so an installed
package finds them from any directory.
"""

from qra_bench.data import surrogate_dir, table_location

DEFAULT_MODEL = "tiny"
#: The embedded default's task: collection, the shipped table ``tiny-<task>``, its surrogates and the main job.
DEFAULT_TASK = "news"
#: Name of the default's shipped table (and of its surrogates' folder).
DEFAULT_TABLE_NAME = f"{DEFAULT_MODEL}-{DEFAULT_TASK}"
DEFAULT_TABLE = str(table_location(DEFAULT_TABLE_NAME))
DEFAULT_SURROGATE = str(surrogate_dir(DEFAULT_TABLE_NAME, "xgb"))
