"""raviso study: CV over labelled sizes and contexts, and its report."""
