"""Scripts stored in the journal and run by the node (docs/scripting.md, "Scripts in the node").

`moat_log.scripts.entry` is the sans-io form of a stored script;
`moat_log.scripts.placement` decides which node runs it;
`moat_log.scripts.runner` runs the scripts of a node as supervised trio tasks.
"""

from .entry import script_value

__all__ = ["script_value"]
