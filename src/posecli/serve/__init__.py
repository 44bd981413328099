"""`posecli serve`: a live page of a source's annotated video and its records."""
