"""The bad-input corpus (issue 12): one command per case, each with its expected code."""
