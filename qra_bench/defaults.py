"""The embedded default: which model and task the CLI, the collector and the main job use when not told.

Kept free of heavy imports so that the CLI can read it at start-up.
"""

DEFAULT_MODEL = "tiny"
#: The embedded default's task: collection, the shipped table ``tiny-<task>``, its surrogates and the main job.
DEFAULT_TASK = "news"
DEFAULT_TABLE = f"datasets_cache/tables/{DEFAULT_MODEL}-{DEFAULT_TASK}"
DEFAULT_SURROGATE = f"surrogates/{DEFAULT_MODEL}-{DEFAULT_TASK}/xgb"
