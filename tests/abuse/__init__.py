"""The reliability battery (issue 6): what the server does with hostile or broken peers."""
