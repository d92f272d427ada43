"""Lets the pack's tests run under plain pytest as well as under `st2-run-pack-tests`.

`st2-run-pack-tests` puts st2common and the pack's `actions/` folder on PYTHONPATH. Outside
StackStorm, this adds `actions/` and installs a minimal stand-in for the `Action` base class
(same constructor, same attributes) so the action modules import unchanged.
"""

import logging
import os
import sys
import types

ACTIONS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "actions")
sys.path.insert(0, ACTIONS_DIR)

try:
    import st2common.runners.base_action  # noqa: F401
except ImportError:

    class Action:
        def __init__(self, config=None, action_service=None):
            self.config = config or {}
            self.action_service = action_service
            self.logger = logging.getLogger(type(self).__name__)

    base_action = types.ModuleType("st2common.runners.base_action")
    base_action.Action = Action
    sys.modules.setdefault("st2common", types.ModuleType("st2common"))
    sys.modules.setdefault("st2common.runners", types.ModuleType("st2common.runners"))
    sys.modules["st2common.runners.base_action"] = base_action
