"""The risk-page blueprint: the page, the assessment JSON, what-if, history and save."""
