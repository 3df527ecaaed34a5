"""The command-line shell over the library; no logic of its own."""
