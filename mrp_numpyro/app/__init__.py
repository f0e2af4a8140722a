"""The application layer: configs, the pipeline stages, the run directory and its report."""
