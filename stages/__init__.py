"""One plain function per pipeline stage: what the CLI, DVC and the tests call."""
