"""Function App blueprints: the routes and triggers of each capability, registered by `function_app.py`.

Shared HTTP plumbing (authorize, read, call one service function, map the answer) is in `respond.py`."""
