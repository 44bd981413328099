"""The run: sources into outputs, with annotated copies, resume, statistics and interrupts."""
