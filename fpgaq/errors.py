"""User-facing errors. The CLI prints the message of an FpgaqError and exits non-zero."""


class FpgaqError(Exception):
    """A problem the user can fix; its message says what and how."""


class ModelError(FpgaqError):
    """The ONNX model is outside what fpgaq supports, or broken.

    Carries every problem found, so the user fixes them all in one round.
    """

    def __init__(self, problems):
        self.problems = tuple(problems)
        if len(self.problems) == 1:
            text = self.problems[0]
        else:
            text = f"{len(self.problems)} problems in the model:\n" + "\n".join(
                f"  {i + 1}. {p}" for i, p in enumerate(self.problems))
        super().__init__(text)


class ConfigError(FpgaqError):
    """The build configuration (YAML or command line) is invalid."""


class ToolError(FpgaqError):
    """An external tool (g++, a simulator) is missing or failed."""

