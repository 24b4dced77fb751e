"""The one exception type for user errors: the CLI prints its message as one line."""


class FlowError(Exception):
    """A user error (bad card, missing file, wrong data): printed as one line, exit code 2."""


class ToolError(FlowError):
    """An external tool (g++, Yosys, a simulator) is missing or failed."""
